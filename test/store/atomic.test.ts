import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { linkNoReplace, writeFileAtomic } from '../../src/store/atomic.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-atomic-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

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

test.run();
