import { closeSync, fstatSync, readFileSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { constants as c, native } from '../../src/native-addon.js';
import { createDetachedMount, handOver } from '../../src/mount/detached.js';
import { RecordingSyscalls } from '../../src/mount/syscalls.js';
import { fdSnapshot, fdsLeftSince, MiniFuse, offThread, threadCount, waitFor } from '../native/mini-fuse.js';

// Every access to our own mount is async or on a worker: the main thread is the one answering.
interface Opened {
  size: number;
  mode: number;
  text: string;
}
const openX = `
  const fd = native.openat2(d.mountFd, d.name, c.O_RDONLY | c.O_CLOEXEC | c.O_NOFOLLOW, 0,
    c.RESOLVE_IN_ROOT | c.RESOLVE_NO_MAGICLINKS);
  try {
    const st = fs.fstatSync(fd);
    return { size: st.size, mode: st.mode, text: fs.readFileSync(fd, 'utf8') };
  } finally { fs.closeSync(fd); }`;

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
}

test('serves a detached mount, then ends with ENODEV leaving no thread or fd', async () => {
  const threadsBefore = threadCount();
  const fdsBefore = fdSnapshot();
  const fs = new MiniFuse({ x: 'hello from fuse\n' });
  // A name no other mount on the machine has (/var/cache/strata-test is the fixtures' cache).
  const fsname = `strata-detached-${process.pid}`;
  const m = await createDetachedMount({ handler: fs, fsname });
  try {
    await servesThenEnds(m, threadsBefore, fsname);
  } finally {
    // A failed assertion must not leave the mount (and the session, which keeps this process alive).
    if (m.session.isOpen) await m.session.close();
  }
  assert.equal(fdsLeftSince(fdsBefore), [], 'no fd left');
});

async function servesThenEnds(
  m: Awaited<ReturnType<typeof createDetachedMount>>,
  threadsBefore: number,
  fsname: string,
): Promise<void> {
  assert.is(threadCount(), threadsBefore, 'no reader thread: the JS thread polls the device');

  assert.ok((await stat(`/proc/self/fd/${m.mountFd}`)).isDirectory());
  const opened = await offThread<Opened>(openX, { mountFd: m.mountFd, name: 'x' });
  assert.equal(opened, { size: 16, mode: 0o100644, text: 'hello from fuse\n' });
  assert.equal(await readdir(`/proc/self/fd/${m.mountFd}`), ['x']);
  assert.is(await readFile(`/proc/self/fd/${m.mountFd}/x`, 'utf8'), 'hello from fuse\n');
  assert.is(await code(offThread(openX, { mountFd: m.mountFd, name: 'missing' })), 'ENOENT');
  // The mount is never attached: nothing in this namespace mentions it.
  assert.not.ok(readFileSync('/proc/self/mountinfo', 'utf8').includes(fsname));

  const started = Date.now();
  closeSync(m.mountFd);
  const end = await Promise.race([m.session.ended, new Promise((r) => setTimeout(() => r('timeout'), 1000))]);
  assert.equal(end, { reason: 'unmounted' });
  console.log(`    ENODEV ${Date.now() - started} ms after the last close`);
  assert.not.ok(m.session.isOpen);
  assert.ok(await waitFor(() => threadCount() === threadsBefore), 'reader thread gone');
}

test('the read-only superblock refuses writes', async () => {
  const m = await createDetachedMount({ handler: new MiniFuse({ x: 'a' }) });
  const create = `native.openat2(d.mountFd, 'new', c.O_WRONLY | c.O_CREAT | c.O_CLOEXEC, 0o644, c.RESOLVE_IN_ROOT);`;
  assert.is(await code(offThread(create, { mountFd: m.mountFd })), 'EROFS');
  closeSync(m.mountFd);
  assert.equal(await m.session.ended, { reason: 'unmounted' });
});

test('close() ends the session from our side; the mount then answers ENOTCONN', async () => {
  const fdsBefore = fdSnapshot();
  const threadsBefore = threadCount();
  const m = await createDetachedMount({ handler: new MiniFuse({ x: 'a' }) });
  assert.ok((await stat(`/proc/self/fd/${m.mountFd}`)).isDirectory()); // INIT answered
  assert.equal(await m.session.close(), { reason: 'closed' });
  assert.is(await code(readdir(`/proc/self/fd/${m.mountFd}`)), 'ENOTCONN');
  closeSync(m.mountFd);
  assert.equal(fdsLeftSince(fdsBefore), []);
  assert.ok(await waitFor(() => threadCount() === threadsBefore), 'reader thread gone');
});

test('handOver sends the mount fd and closes our copy; the receiver keeps it alive', async () => {
  const fdsBefore = fdSnapshot();
  const m = await createDetachedMount({ handler: new MiniFuse({ x: 'shared' }) });
  const [a, b] = native.socketpair();
  handOver(m.mountFd, a);
  const got = native.recvFds(b, 16, 4);
  assert.is(got.fds.length, 1);
  assert.is(await readFile(`/proc/self/fd/${got.fds[0]}/x`, 'utf8'), 'shared');
  assert.ok(m.session.isOpen, 'the received fd pins the mount');
  closeSync(got.fds[0]);
  assert.equal(await m.session.ended, { reason: 'unmounted' });
  closeSync(a);
  closeSync(b);
  assert.equal(fdsLeftSince(fdsBefore), [], 'our copy was closed by handOver');
  assert.throws(() => fstatSync(m.mountFd));
});

test('configures fuse in the verified order and closes everything when fsmount fails', async () => {
  const sys = new RecordingSyscalls().failOn('fsmount', 'EPERM');
  assert.is(
    await code(createDetachedMount({ handler: new MiniFuse({}), syscalls: sys, uid: 7, gid: 8 })),
    'EPERM',
  );
  assert.equal(sys.trace(), [
    `open("/dev/fuse",${c.O_RDWR | c.O_CLOEXEC})`,
    `fsopen("fuse",${c.FSOPEN_CLOEXEC})`,
    'fsconfigSetString(1001,"fd","1000")',
    'fsconfigSetString(1001,"source","strata")',
    'fsconfigSetString(1001,"subtype","strata")',
    'fsconfigSetString(1001,"rootmode","40000")',
    'fsconfigSetString(1001,"user_id","7")',
    'fsconfigSetString(1001,"group_id","8")',
    'fsconfigSetFlag(1001,"ro")',
    'fsconfigSetFlag(1001,"default_permissions")',
    'fsconfigSetFlag(1001,"allow_other")',
    'fsconfigCreate(1001)',
    `fsmount(1001,${c.FSMOUNT_CLOEXEC},${c.MOUNT_ATTR_RDONLY})`,
    'close(1001)',
    'close(1000)',
  ]);
  assert.is(sys.openFds.size, 0);
});

test.run();
