// Teardown on real mounts: when the last reference to the mount goes — the detached mount fd
// closed, or the attached mount unmounted — the kernel ends the session (ENODEV) and the server
// is left with no fd, no thread and no mount. A process holding a file open keeps the session
// alive until it lets go.
import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mountImage } from '../../src/mount/attach.js';
import { serveImage } from '../../src/mount/serve.js';
import type { SessionEnd } from '../../src/mount/session.js';
import { debianImage } from '../fixtures/images.js';
import { run } from '../fixtures/run.js';
import {
  fdSnapshot,
  fdsLeftSince,
  type FdSnapshot,
  tempStore,
  threadCount,
  waitFor,
  type TempStore,
} from './real-mount.js';

let store: TempStore;

test.before(async () => {
  store = await tempStore({ debian: await debianImage() });
  // Start libuv's pool threads now, so they do not count as leaked later.
  await Promise.all(Array.from({ length: 8 }, () => readFile('/proc/self/status')));
});

test.after(async () => {
  await store.cleanup();
});

function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Reads through the mount from another process (this one's main thread serves the requests). */
async function readThrough(root: string): Promise<void> {
  const { stdout } = await run('sh', [
    '-c',
    'cat "$1/etc/os-release" && sha256sum "$1/usr/bin/bash"',
    'sh',
    root,
  ]);
  assert.match(stdout, /Debian GNU\/Linux 12/);
}

async function assertNothingLeft(fds: FdSnapshot, threads: number, what: string): Promise<void> {
  assert.ok(await waitFor(() => threadCount() === threads, 2000), `${what}: reader thread left`);
  assert.ok(
    await waitFor(() => fdsLeftSince(fds).length === 0, 2000),
    `${what}: fds left: ${fdsLeftSince(fds).join(', ')}`,
  );
  assert.equal(store.mounts(), [], `${what}: strata mounts left`);
}

/** How long an unmounted session may take to end: ENODEV comes once the last copy of the mount is
 * gone, and a mount namespace made meanwhile on this machine (another test's container, `unshare
 * -m`) holds a copy until it goes. A wait for the event, not a time limit. */
const ENDS_MS = 120_000;

test('closing the last fd of a detached mount ends the session with nothing left', async () => {
  const fds = fdSnapshot();
  const threads = threadCount();
  const served = await serveImage({ storeRoot: store.root, ref: 'debian', passthrough: false });
  assert.is(threadCount(), threads, 'no reader thread: the session polls on the JS thread');
  await readThrough(`/proc/${process.pid}/fd/${served.mountFd}`);
  assert.ok(served.session.isOpen);
  const started = Date.now();
  closeSync(served.mountFd);
  assert.equal(await within(served.done, ENDS_MS), { reason: 'unmounted' } satisfies SessionEnd);
  console.log(`    ENODEV ${Date.now() - started} ms after close`);
  await assertNothingLeft(fds, threads, 'detached');
});

test('umount of an attached mount ends the session with nothing left (passthrough on)', async () => {
  const fds = fdSnapshot();
  const threads = threadCount();
  const dir = await store.mountPoint();
  const mount = await mountImage({ storeRoot: store.root, ref: 'debian', dir, passthrough: true });
  assert.equal(store.mounts(), [dir]);
  await readThrough(dir);
  await run('umount', [dir]);
  assert.equal(await within(mount.done, ENDS_MS), { reason: 'unmounted' });
  await assertNothingLeft(fds, threads, 'attached');
});

/** A process holding DIR/etc/os-release open until release(): a user who won't let go of a mount. */
async function holdOpen(dir: string): Promise<{ release(): Promise<void> }> {
  const child = spawn('sh', ['-c', 'exec 3<"$1/etc/os-release"; echo held; read x', 'sh', dir], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise((r) => child.stdout.once('data', r));
  return {
    release: async () => {
      child.stdin.end();
      await new Promise((r) => child.once('close', r));
    },
  };
}

test('an open file keeps a lazily unmounted session alive until it is closed', async () => {
  const fds = fdSnapshot();
  const threads = threadCount();
  const dir = await store.mountPoint();
  const mount = await mountImage({ storeRoot: store.root, ref: 'debian', dir });
  const holder = await holdOpen(dir);
  await run('umount', ['--lazy', dir]);
  assert.equal(store.mounts(), [], 'gone from the namespace at once');
  assert.is(await within(mount.done, 300), 'timeout', 'the open file pins the session');
  assert.ok(mount.session.isOpen);
  await holder.release();
  assert.equal(await within(mount.done, ENDS_MS), { reason: 'unmounted' });
  await assertNothingLeft(fds, threads, 'lazy');
});

test('stop() unmounts, and aborts the session when a reader does not let go', async () => {
  const fds = fdSnapshot();
  const threads = threadCount();
  const dir = await store.mountPoint();
  const mount = await mountImage({ storeRoot: store.root, ref: 'debian', dir });
  const holder = await holdOpen(dir);
  assert.equal(await within(mount.stop(200), ENDS_MS), { reason: 'closed' });
  assert.equal(store.mounts(), []);
  await holder.release();
  await assertNothingLeft(fds, threads, 'stop');
});

test.run();
