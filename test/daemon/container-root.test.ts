// container-root.ts: every valid transition (prepared → attached → releasing → released, and
// prepared → releasing) and every invalid one (attach from attached, releasing, released), on
// real served images: what each leaves behind (mount fd, session, lease) is what the kernel and
// the store show.
import { closeSync, fstatSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { ContainerRoot, InvalidTransitionError, type Guard } from '../../src/daemon/container-root.js';
import { serveImage, type ServedImage } from '../../src/mount/serve.js';
import { listLeases } from '../../src/store/leases.js';
import { busyboxImage } from '../fixtures/images.js';
import {
  fdSnapshot,
  fdsLeftSince,
  tempStore,
  threadCount,
  waitFor,
  type TempStore,
} from '../mount/real-mount.js';

let store: TempStore;

test.before(async () => {
  store = await tempStore({ busybox: await busyboxImage() });
  await Promise.all(Array.from({ length: 8 }, () => readFile('/proc/self/status')));
});

test.after(async () => {
  await store.cleanup();
});

function serve(): Promise<ServedImage> {
  return serveImage({ storeRoot: store.root, ref: 'busybox', lease: { kind: 'container', reader: 't' } });
}

/** A guard that counts its stops. */
function countingGuard(): Guard & { stops: number } {
  const g = {
    stops: 0,
    stop() {
      g.stops++;
    },
  };
  return g;
}

function isOpenFd(fd: number): boolean {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

function assertInvalid(fn: () => unknown, from: string, kind: string, message: string): void {
  try {
    fn();
    assert.unreachable(`attach from ${from} must fail`);
  } catch (err) {
    assert.instance(err, InvalidTransitionError);
    const e = err as InvalidTransitionError;
    assert.is(e.from, from);
    assert.is(e.event, 'attach');
    assert.is(e.kind, kind);
    assert.match(e.message, message);
  }
}

async function assertNothingLeft(fds: ReturnType<typeof fdSnapshot>, threads: number): Promise<void> {
  assert.equal(await listLeases(store.root), [], 'lease released');
  assert.ok(await waitFor(() => threadCount() <= threads, 2000), 'reader threads gone');
  assert.ok(await waitFor(() => fdsLeftSince(fds).length === 0, 2000), `fds left: ${fdsLeftSince(fds)}`);
}

test('prepared → releasing → released: our mount fd is closed, the session ends, guards stop', async () => {
  const fds = fdSnapshot();
  const threads = threadCount();
  const served = await serve();
  const guard = countingGuard();
  const root = new ContainerRoot('c1', served, [guard]);
  assert.is(root.status, 'prepared');
  assert.equal(
    (await listLeases(store.root)).map((l) => l.labels?.kind),
    ['container'],
  );
  const releasing = root.release(1000);
  assert.is(root.status, 'releasing');
  assert.is(guard.stops, 1);
  assert.not.ok(isOpenFd(served.mountFd), 'mount fd closed on leaving prepared');
  const outcome = await releasing;
  assert.is(root.status, 'released');
  assert.equal(outcome, { end: { reason: 'unmounted' }, aborted: false });
  await assertNothingLeft(fds, threads);
});

test('prepared → attached → releasing → released: the holder of the fd ends the session', async () => {
  const fds = fdSnapshot();
  const threads = threadCount();
  const served = await serve();
  const guard = countingGuard();
  const root = new ContainerRoot('c2', served, [guard]);
  const fd = root.attach();
  assert.is(root.status, 'attached');
  assert.is(fd, served.mountFd);
  assert.is(guard.stops, 1, 'guards stop on leaving prepared');
  assert.ok(isOpenFd(fd), 'the fd is the caller’s now, still open');
  const releasing = root.release(5000);
  assert.is(root.status, 'releasing');
  assert.is(guard.stops, 1, 'guards stop once');
  closeSync(fd); // the container's namespace going away
  assert.equal(await releasing, { end: { reason: 'unmounted' }, aborted: false });
  assert.is(root.status, 'released');
  await assertNothingLeft(fds, threads);
});

test('attached → releasing aborts a session that still has users after the grace time', async () => {
  const served = await serve();
  const root = new ContainerRoot('c3', served);
  const fd = root.attach();
  const outcome = await root.release(50);
  assert.equal(outcome, { end: { reason: 'closed' }, aborted: true });
  assert.is(root.status, 'released');
  assert.equal(await listLeases(store.root), []);
  closeSync(fd);
});

test('invalid: attach from attached (FailedPrecondition), releasing and released (NotFound)', async () => {
  const served = await serve();
  const root = new ContainerRoot('c4', served);
  const fd = root.attach();
  assertInvalid(
    () => root.attach(),
    'attached',
    'FailedPrecondition',
    'container c4 already received its root',
  );
  const releasing = root.release(5000);
  assertInvalid(() => root.attach(), 'releasing', 'NotFound', 'no root prepared for container c4');
  // release while releasing joins the release under way.
  const joined = root.release(0);
  closeSync(fd);
  const [first, second] = await Promise.all([releasing, joined]);
  assert.equal(first, { end: { reason: 'unmounted' }, aborted: false });
  assert.is(second, first);
  assertInvalid(() => root.attach(), 'released', 'NotFound', 'no root prepared for container c4');
  // release when released resolves with the same outcome, and changes nothing.
  assert.is(await root.release(0), first);
  assert.is(root.status, 'released');
});

test.run();
