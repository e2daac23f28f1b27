import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createExclusive,
  createFileNoReplaceSync,
  linkNoReplace,
  writeFileAtomic,
  writeFileAtomicSync,
} from '../../src/store/atomic.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-atomic-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('createFileNoReplaceSync: creates (parent made), keeps an existing file, leaves no temp file', () => {
  const tmp = join(dir, 'cfnr-tmp');
  const dest = join(dir, 'cfnr', 'sub', 'lease.json');
  assert.is(createFileNoReplaceSync(tmp, dest, 'first'), true);
  assert.is(readFileSync(dest, 'utf8'), 'first');
  assert.is(createFileNoReplaceSync(tmp, dest, 'second'), false, 'EEXIST: kept');
  assert.is(readFileSync(dest, 'utf8'), 'first');
  assert.equal(readdirSync(tmp), [], 'no temp file left');
  symlinkSync(join(dir, 'nowhere'), join(dir, 'cfnr', 'planted'));
  assert.is(
    createFileNoReplaceSync(tmp, join(dir, 'cfnr', 'planted'), 'x'),
    false,
    'a planted link is refused',
  );
  assert.not.ok(existsSync(join(dir, 'nowhere')), 'nothing written through it');
});

test('linkNoReplace makes the missing parent directory and keeps an existing file', async () => {
  writeFileSync(join(dir, 't1'), 'one');
  assert.is(await linkNoReplace(join(dir, 't1'), join(dir, 'a/b/dest')), true);
  assert.is(readFileSync(join(dir, 'a/b/dest'), 'utf8'), 'one');
  assert.not.ok(existsSync(join(dir, 't1')), 'the temp file is gone');
  writeFileSync(join(dir, 't2'), 'two');
  assert.is(await linkNoReplace(join(dir, 't2'), join(dir, 'a/b/dest')), false);
  assert.is(readFileSync(join(dir, 'a/b/dest'), 'utf8'), 'one', 'an existing file is never replaced');
});

test('linkNoReplace fails with ENOENT (and does not loop) when the temp file is missing', async () => {
  try {
    await linkNoReplace(join(dir, 'no-such-temp'), join(dir, 'c/dest'));
    assert.unreachable();
  } catch (err) {
    assert.is((err as NodeJS.ErrnoException).code, 'ENOENT');
  }
});

test('writeFileAtomic leaves no temp file and honours replace', async () => {
  const tmp = join(dir, 'tmp');
  assert.is(await writeFileAtomic(tmp, join(dir, 'f'), 'x'), true);
  assert.is(await writeFileAtomic(tmp, join(dir, 'f'), 'y'), false);
  assert.is(readFileSync(join(dir, 'f'), 'utf8'), 'x');
  assert.is(await writeFileAtomic(tmp, join(dir, 'f'), 'z', { replace: true }), true);
  assert.is(readFileSync(join(dir, 'f'), 'utf8'), 'z');
  assert.equal((await import('node:fs')).readdirSync(tmp), []);
});

test('createExclusive never writes through a planted symlink, dangling or not', async () => {
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious');
  symlinkSync(victim, join(dir, 'planted'));
  symlinkSync(join(dir, 'nowhere'), join(dir, 'dangling'));
  for (const name of ['planted', 'dangling']) {
    try {
      await createExclusive(join(dir, name));
      assert.unreachable();
    } catch (err) {
      assert.is((err as NodeJS.ErrnoException).code, 'EEXIST', name);
    }
  }
  assert.is(readFileSync(victim, 'utf8'), 'precious');
  assert.not.ok(existsSync(join(dir, 'nowhere')), 'nothing created at the dangling target');
});

test('writeFileAtomicSync replaces a symlink at the destination, not its target; mode is exact', () => {
  const victim = join(dir, 'victim2');
  writeFileSync(victim, 'precious');
  const sub = join(dir, 'sync');
  mkdirSync(sub);
  symlinkSync(victim, join(sub, 'state.json'));
  writeFileAtomicSync(join(sub, 'state.json'), '{}\n', { mode: 0o600 });
  assert.is(readFileSync(victim, 'utf8'), 'precious');
  assert.ok(lstatSync(join(sub, 'state.json')).isFile());
  assert.is(readFileSync(join(sub, 'state.json'), 'utf8'), '{}\n');
  assert.is(statSync(join(sub, 'state.json')).mode & 0o777, 0o600);
  assert.equal(readdirSync(sub), ['state.json'], 'no temp file left');
});

test('writeFileAtomicSync into a missing directory fails with ENOENT and leaves nothing', () => {
  try {
    writeFileAtomicSync(join(dir, 'no-such-dir', 'f'), 'x');
    assert.unreachable();
  } catch (err) {
    assert.is((err as NodeJS.ErrnoException).code, 'ENOENT');
  }
});

test.run();
