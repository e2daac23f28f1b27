import { closeSync, openSync, writeSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { constants as c, native } from '../../src/native-addon.js';
import { fdSnapshot, fdsLeftSince, MiniFuse, threadCount, waitFor } from './mini-fuse.js';

/** A fuse mount served straight from the native reader, without the session layer. */
function rawMount(
  onEnd: (why: string) => void,
  fs = new MiniFuse({ a: '1', b: '2' }),
  start = native.startReader,
) {
  const dev = openSync('/dev/fuse', c.O_RDWR | c.O_CLOEXEC);
  const ctx = native.fsopen('fuse', c.FSOPEN_CLOEXEC);
  native.fsconfigSetString(ctx, 'fd', String(dev));
  native.fsconfigSetString(ctx, 'rootmode', '40000');
  native.fsconfigSetString(ctx, 'user_id', '0');
  native.fsconfigSetString(ctx, 'group_id', '0');
  native.fsconfigCreate(ctx);
  const mnt = native.fsmount(ctx, c.FSMOUNT_CLOEXEC, 0);
  closeSync(ctx);
  const handle = start(dev, 1 << 20, (req, why) => {
    if (req === null) return onEnd(why!);
    const reply = fs.handle(req);
    try {
      if (reply) writeSync(dev, reply);
    } catch (err) {
      // interrupted (ENOENT) or the mount already gone (ENODEV)
      if (!['ENOENT', 'ENODEV'].includes((err as NodeJS.ErrnoException).code!)) throw err;
    }
  });
  return { dev, mnt, handle, fs };
}

test('requests arrive as Buffers; ENODEV ends the reader, joined before the callback', async () => {
  const threads = threadCount();
  const fds = fdSnapshot();
  let ended: string | undefined;
  let threadsAtEnd = -1;
  const m = rawMount((why) => {
    ended = why;
    threadsAtEnd = threadCount();
  });
  assert.equal((await readdir(`/proc/self/fd/${m.mnt}`)).sort(), ['a', 'b']);
  assert.ok(m.fs.seen(26) === 1, 'INIT went through the reader');
  closeSync(m.mnt);
  assert.ok(await waitFor(() => ended !== undefined));
  assert.is(ended, 'ENODEV');
  assert.ok(threadsAtEnd <= threads + 1); // joined; /proc may lag the join by a moment
  assert.ok(await waitFor(() => threadCount() === threads));
  native.stopReader(m.handle); // after the end: ignored
  closeSync(m.dev);
  assert.equal(fdsLeftSince(fds), []);
});

test('stopReader wakes a thread blocked waiting for requests', async () => {
  const threads = threadCount();
  let ended: string | undefined;
  const m = rawMount((why) => (ended = why));
  await readdir(`/proc/self/fd/${m.mnt}`);
  await new Promise((r) => setTimeout(r, 50)); // the thread is idle in the kernel now
  const t0 = Date.now();
  native.stopReader(m.handle);
  assert.ok(await waitFor(() => ended !== undefined, 1000));
  assert.is(ended, 'stopped');
  console.log(`    stopped in ${Date.now() - t0} ms`);
  assert.ok(await waitFor(() => threadCount() === threads));
  closeSync(m.mnt);
  closeSync(m.dev);
});

test('an ended reader does not keep the event loop alive', async () => {
  // If it did, this file would never finish: uvu exits only when the loop drains.
  let ended = false;
  const m = rawMount(() => (ended = true));
  await readdir(`/proc/self/fd/${m.mnt}`);
  closeSync(m.mnt);
  assert.ok(await waitFor(() => ended));
  closeSync(m.dev);
});

test('rejects bad arguments before starting a thread', () => {
  const threads = threadCount();
  assert.throws(() => native.startReader(0, 100, () => {}), /at least 8192/);
  assert.throws(
    () => native.startReader(9999, 1 << 20, () => {}),
    (e: NodeJS.ErrnoException) => e.code === 'EBADF',
  );
  assert.throws(() => native.startReader(0, 1 << 20, 'x' as never), /callback must be a function/);
  assert.is(threadCount(), threads);
});

test('poll reader: requests are read on the JS thread (no thread started), ENODEV ends it', async () => {
  const threads = threadCount();
  const fds = fdSnapshot();
  let ended: string | undefined;
  const m = rawMount((why) => (ended = why), new MiniFuse({ a: '1', b: '2' }), native.startPollReader);
  assert.is(threadCount(), threads);
  assert.equal((await readdir(`/proc/self/fd/${m.mnt}`)).sort(), ['a', 'b']);
  assert.ok(m.fs.seen(26) === 1, 'INIT went through the poll reader');
  closeSync(m.mnt);
  assert.ok(await waitFor(() => ended !== undefined));
  assert.is(ended, 'ENODEV');
  native.stopReader(m.handle); // after the end: ignored
  closeSync(m.dev);
  assert.equal(fdsLeftSince(fds), []);
});

test('poll reader: stopReader ends it with "stopped", and an ended one lets the loop drain', async () => {
  let ended: string | undefined;
  const m = rawMount((why) => (ended = why), new MiniFuse({ a: '1' }), native.startPollReader);
  await readdir(`/proc/self/fd/${m.mnt}`);
  native.stopReader(m.handle);
  native.stopReader(m.handle); // twice: ignored
  assert.ok(await waitFor(() => ended !== undefined, 1000));
  assert.is(ended, 'stopped');
  closeSync(m.mnt);
  closeSync(m.dev);
});

test('poll reader rejects bad arguments', () => {
  assert.throws(() => native.startPollReader(0, 100, () => {}), /at least 8192/);
  assert.throws(
    () => native.startPollReader(9999, 1 << 20, () => {}),
    (e: NodeJS.ErrnoException) => e.code === 'EBADF',
  );
  assert.throws(() => native.startPollReader(0, 1 << 20, 'x' as never), /callback must be a function/);
});

test.run();
