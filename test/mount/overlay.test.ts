import {
  chmodSync,
  chownSync,
  closeSync,
  mkdirSync,
  statSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { constants as c, native } from '../../src/native-addon.js';
import { createDetachedMount } from '../../src/mount/detached.js';
import { createDetachedOverlay } from '../../src/mount/overlay.js';
import { RecordingSyscalls } from '../../src/mount/syscalls.js';
import { fdSnapshot, fdsLeftSince, MiniFuse, threadCount, waitFor } from '../native/mini-fuse.js';

function detachedTmpfs(): number {
  const fs = native.fsopen('tmpfs', c.FSOPEN_CLOEXEC);
  native.fsconfigCreate(fs);
  const m = native.fsmount(fs, c.FSMOUNT_CLOEXEC, 0);
  closeSync(fs);
  return m;
}

test('overlay over a detached tmpfs: writes land in the upper layer, the lower is unchanged', async () => {
  const fdsBefore = fdSnapshot();
  const lower = detachedTmpfs();
  writeFileSync(`/proc/self/fd/${lower}/a`, 'lower a');
  const ovl = await createDetachedOverlay(lower);
  const root = `/proc/self/fd/${ovl}`;
  assert.is(readFileSync(`${root}/a`, 'utf8'), 'lower a');
  writeFileSync(`${root}/a`, 'changed');
  writeFileSync(`${root}/b`, 'new');
  assert.equal(readdirSync(root).sort(), ['a', 'b']);
  assert.is(readFileSync(`/proc/self/fd/${lower}/a`, 'utf8'), 'lower a');
  assert.equal(readdirSync(`/proc/self/fd/${lower}`), ['a']);
  closeSync(ovl);
  closeSync(lower);
  assert.equal(fdsLeftSince(fdsBefore), [], 'every intermediate fd closed');
});

test('overlay with a given upper directory keeps the changes there', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-ovl-'));
  try {
    const lower = detachedTmpfs();
    writeFileSync(`/proc/self/fd/${lower}/a`, 'lower a');
    const upper = join(dir, 'upper');
    mkdirSync(upper);
    const ovl = await createDetachedOverlay(lower, { upperDir: upper });
    writeFileSync(`/proc/self/fd/${ovl}/b`, 'new');
    closeSync(ovl);
    closeSync(lower);
    assert.is(readFileSync(join(upper, 'b'), 'utf8'), 'new');
    assert.ok(readdirSync(dir).includes('.upper.work'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("upperRootFromLower: an empty upper directory takes the lower root's mode and owner, a used one is kept", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-ovl-'));
  try {
    const lower = detachedTmpfs();
    chmodSync(`/proc/self/fd/${lower}`, 0o555);
    chownSync(`/proc/self/fd/${lower}`, 12, 34);
    const upper = join(dir, 'upper');
    mkdirSync(upper, { mode: 0o755 });
    const ovl = await createDetachedOverlay(lower, { upperDir: upper, upperRootFromLower: true });
    const root = statSync(`/proc/self/fd/${ovl}`);
    assert.equal([root.mode & 0o7777, root.uid, root.gid], [0o555, 12, 34]);
    closeSync(ovl);
    chmodSync(upper, 0o700);
    writeFileSync(join(upper, 'kept'), '');
    const again = await createDetachedOverlay(lower, { upperDir: upper, upperRootFromLower: true });
    assert.is(statSync(`/proc/self/fd/${again}`).mode & 0o7777, 0o700, 'a layer in use is left as it is');
    closeSync(again);
    closeSync(lower);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('overlay over the detached FUSE mount; closing both ends the FUSE session', async () => {
  const threadsBefore = threadCount();
  const fdsBefore = fdSnapshot();
  const m = await createDetachedMount({ handler: new MiniFuse({ x: 'from the image' }) });
  const ovl = await createDetachedOverlay(m.mountFd);
  closeSync(m.mountFd); // the overlay holds its own reference to the lower mount
  const root = `/proc/self/fd/${ovl}`;
  assert.is(await readFile(`${root}/x`, 'utf8'), 'from the image');
  await writeFile(`${root}/x`, 'changed in the container');
  assert.is(await readFile(`${root}/x`, 'utf8'), 'changed in the container');
  assert.equal((await readdir(root)).sort(), ['x']);
  assert.ok(m.session.isOpen, 'the overlay pins the lower mount');
  closeSync(ovl);
  const end = await Promise.race([m.session.ended, new Promise((r) => setTimeout(() => r('timeout'), 2000))]);
  assert.equal(end, { reason: 'unmounted' });
  assert.ok(await waitFor(() => threadCount() === threadsBefore));
  assert.equal(fdsLeftSince(fdsBefore), []);
});

test('builds the verified sequence and closes every intermediate fd on failure', async () => {
  const sys = new RecordingSyscalls().failOn('fsconfigCreateAsync', 'EINVAL');
  try {
    await createDetachedOverlay(7, { syscalls: sys });
    assert.unreachable('the injected failure must surface');
  } catch (err) {
    assert.is((err as NodeJS.ErrnoException).code, 'EINVAL');
  }
  const dir = c.O_PATH | c.O_DIRECTORY | c.O_CLOEXEC;
  assert.equal(sys.trace(), [
    `fsopen("tmpfs",${c.FSOPEN_CLOEXEC})`,
    'fsconfigSetString(1000,"mode","0755")',
    'fsconfigCreate(1000)',
    `fsmount(1000,${c.FSMOUNT_CLOEXEC},0)`,
    'mkdirat(1001,"upper",493)',
    'mkdirat(1001,"work",448)',
    `openat2(1001,"upper",${dir},0,${c.RESOLVE_IN_ROOT})`,
    `openat2(1001,"work",${dir},0,${c.RESOLVE_IN_ROOT})`,
    `fsopen("overlay",${c.FSOPEN_CLOEXEC})`,
    'fsconfigSetString(1004,"source","strata")',
    'fsconfigSetFd(1004,"lowerdir+",7)',
    'fsconfigSetFd(1004,"upperdir",1002)',
    'fsconfigSetFd(1004,"workdir",1003)',
    'fsconfigCreateAsync(1004)',
    'close(1004)',
    'close(1003)',
    'close(1002)',
    'close(1001)',
    'close(1000)',
  ]);
  assert.is(sys.openFds.size, 0);
});

test.run();
