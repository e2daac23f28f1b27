// clearMountPoints (src/shim/root-dir.ts): what runc makes in a strata-served root's directory
// goes (empty directories and files), nothing else does: a file with data, a symlink (never
// followed), anything on another filesystem (a mount is never entered).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { clearMountPoints } from '../../src/shim/root-dir.js';

test("runc's mount points go; the directory itself stays", () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-rootdir-'));
  try {
    for (const d of ['proc', 'dev', 'sys', 'run', 'etc', 'data/deep/er'])
      mkdirSync(join(dir, d), { recursive: true });
    for (const f of ['etc/hosts', 'etc/resolv.conf', 'data/deep/file']) writeFileSync(join(dir, f), '');
    assert.equal(clearMountPoints(dir), []);
    assert.equal(readdirSync(dir), []);
    assert.equal(clearMountPoints(join(dir, 'missing')), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file with data, a symlink and a mount are left, and named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-rootdir-'));
  const outside = mkdtempSync(join(tmpdir(), 'strata-rootdir-out-'));
  const mnt = join(dir, 'mnt');
  try {
    mkdirSync(join(dir, 'etc'));
    writeFileSync(join(dir, 'etc', 'kept'), 'data');
    writeFileSync(join(outside, 'empty'), '');
    symlinkSync(outside, join(dir, 'link'));
    mkdirSync(mnt);
    await execa('mount', ['-t', 'tmpfs', 'none', mnt]);
    mkdirSync(join(mnt, 'inside'));
    const left = clearMountPoints(dir).sort();
    assert.equal(left, [join(dir, 'etc', 'kept'), join(dir, 'link'), mnt].sort());
    assert.ok(existsSync(join(mnt, 'inside')), 'the mount was not entered');
    assert.ok(existsSync(join(outside, 'empty')), 'the symlink was not followed');
  } finally {
    await execa('umount', [mnt], { reject: false });
    rmSync(dir, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  }
});

test.run();
