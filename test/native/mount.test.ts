import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { constants as c, native } from '../../src/native-addon.js';
import { fdSnapshot, fdsLeftSince } from './mini-fuse.js';

function errCode(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
}

function tmpfs(): number {
  const fs = native.fsopen('tmpfs', c.FSOPEN_CLOEXEC);
  native.fsconfigSetString(fs, 'mode', '0755');
  native.fsconfigSetFlag(fs, 'noswap');
  native.fsconfigCreate(fs);
  const m = native.fsmount(fs, c.FSMOUNT_CLOEXEC, 0);
  closeSync(fs);
  return m;
}

test('fsopen tmpfs -> fsmount gives a detached mount that never shows in mountinfo', () => {
  const before = readFileSync('/proc/self/mountinfo', 'utf8');
  const m = tmpfs();
  writeFileSync(`/proc/self/fd/${m}/f`, 'x');
  assert.equal(readdirSync(`/proc/self/fd/${m}`), ['f']);
  assert.is(readFileSync('/proc/self/mountinfo', 'utf8'), before);
  closeSync(m);
});

test('errors are shaped like Node errno errors', () => {
  try {
    native.fsopen('no-such-fs', 0);
    assert.unreachable();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    assert.is(e.code, 'ENODEV');
    assert.is(e.errno, -19);
    assert.is(e.syscall, 'fsopen');
    assert.is(e.path, 'no-such-fs');
    assert.match(e.message, /^ENODEV: no such device, fsopen 'no-such-fs'$/);
  }
  const fs = native.fsopen('tmpfs', c.FSOPEN_CLOEXEC);
  assert.is(
    errCode(() => native.fsconfigSetString(fs, 'nonsense', '1')),
    'EINVAL',
  );
  assert.is(
    errCode(() => native.fsconfigSetFd(fs, 'source', 0)),
    'EINVAL',
  );
  assert.throws(() => native.fsmount(fs, c.FSMOUNT_CLOEXEC, 0), /EINVAL/); // not created yet
  closeSync(fs);
  assert.throws(() => native.fsopen(42 as unknown as string, 0), /fsname must be a string/);
});

test('openat2 RESOLVE_IN_ROOT keeps a symlink inside the mount; BENEATH refuses ..', () => {
  const m = tmpfs();
  writeFileSync(`/proc/self/fd/${m}/hello`, 'hi');
  symlinkSync('/hello', `/proc/self/fd/${m}/abs`);
  symlinkSync('/etc/passwd', `/proc/self/fd/${m}/escape`);
  const flags = c.O_RDONLY | c.O_CLOEXEC;
  const fd = native.openat2(m, 'abs', flags, 0, c.RESOLVE_IN_ROOT);
  assert.is(readFileSync(fd, 'utf8'), 'hi');
  closeSync(fd);
  assert.is(
    errCode(() => native.openat2(m, 'escape', flags, 0, c.RESOLVE_IN_ROOT)),
    'ENOENT',
  );
  assert.is(
    errCode(() => native.openat2(m, '../../etc/passwd', flags, 0, c.RESOLVE_BENEATH)),
    'EXDEV',
  );
  assert.is(
    errCode(() => native.openat2(m, 'abs', flags, 0, c.RESOLVE_NO_SYMLINKS)),
    'ELOOP',
  );
  const created = native.openat2(
    m,
    'new',
    c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_CLOEXEC,
    0o600,
    c.RESOLVE_IN_ROOT,
  );
  closeSync(created);
  assert.ok(readdirSync(`/proc/self/fd/${m}`).includes('new'));
  closeSync(m);
});

test('mountSetattr makes a detached mount read-only and back', () => {
  const m = tmpfs();
  native.mountSetattr(m, '', c.AT_EMPTY_PATH, c.MOUNT_ATTR_RDONLY, 0);
  assert.throws(() => writeFileSync(`/proc/self/fd/${m}/x`, 'x'), /EROFS/);
  native.mountSetattr(m, '', c.AT_EMPTY_PATH, 0, c.MOUNT_ATTR_RDONLY);
  writeFileSync(`/proc/self/fd/${m}/x`, 'x');
  closeSync(m);
});

test('openTree clones a detached tree; moveMount attaches one detached mount inside another', () => {
  const fdsBefore = fdSnapshot();
  const outer = tmpfs();
  const inner = tmpfs();
  writeFileSync(`/proc/self/fd/${inner}/in-inner`, 'x');
  const clone = native.openTree(outer, '', c.AT_EMPTY_PATH | c.OPEN_TREE_CLONE | c.OPEN_TREE_CLOEXEC);
  writeFileSync(`/proc/self/fd/${clone}/seen-through-clone`, 'x');
  assert.ok(readdirSync(`/proc/self/fd/${outer}`).includes('seen-through-clone'), 'same superblock');
  closeSync(clone);
  // A detached mount can receive another detached mount (the "stack" building block).
  mkdirSync(`/proc/self/fd/${outer}/sub`);
  const target = native.openat2(outer, 'sub', c.O_PATH | c.O_DIRECTORY | c.O_CLOEXEC, 0, c.RESOLVE_IN_ROOT);
  native.moveMount(inner, '', target, '', c.MOVE_MOUNT_F_EMPTY_PATH | c.MOVE_MOUNT_T_EMPTY_PATH);
  closeSync(target);
  assert.equal(readdirSync(`/proc/self/fd/${outer}/sub`), ['in-inner']);
  assert.is(
    errCode(() => native.openTree(outer, 'missing', c.OPEN_TREE_CLOEXEC)),
    'ENOENT',
  );
  closeSync(inner);
  closeSync(outer);
  assert.equal(fdsLeftSince(fdsBefore), []);
});

test('fsconfigCreateAsync creates off the JS thread', async () => {
  const fs = native.fsopen('tmpfs', c.FSOPEN_CLOEXEC);
  await native.fsconfigCreateAsync(fs);
  const m = native.fsmount(fs, c.FSMOUNT_CLOEXEC, 0);
  closeSync(fs);
  closeSync(m);
  const bad = native.fsopen('overlay', c.FSOPEN_CLOEXEC);
  try {
    await native.fsconfigCreateAsync(bad); // no layers given
    assert.unreachable();
  } catch (err) {
    assert.is((err as NodeJS.ErrnoException).syscall, 'fsconfig');
  }
  closeSync(bad);
});

test('umount2 unmounts off the JS thread and reports errno errors with the path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-umount2-'));
  const mounted = () => readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${dir} `);
  try {
    const m = tmpfs();
    native.moveMount(m, '', c.AT_FDCWD, dir, c.MOVE_MOUNT_F_EMPTY_PATH);
    closeSync(m);
    writeFileSync(join(dir, 'f'), 'x');
    assert.ok(mounted());
    await native.umount2(dir, c.MNT_DETACH | c.UMOUNT_NOFOLLOW);
    assert.not.ok(mounted());
    assert.equal(readdirSync(dir), []);
    try {
      await native.umount2(dir, 0); // no longer a mount point
      assert.unreachable();
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      assert.equal([e.code, e.syscall, e.path], ['EINVAL', 'umount2', dir]);
    }
  } finally {
    if (mounted()) await native.umount2(dir, c.MNT_DETACH);
    rmSync(dir, { recursive: true });
  }
});

test.run();
