import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FdCache } from '../../../src/mount/fs/fd-cache.js';
import { fdSnapshot, fdsLeftSince } from '../../native/mini-fuse.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-fd-cache-'));
const paths = Array.from({ length: 6 }, (_, i) => {
  const p = join(dir, `f${i}`);
  writeFileSync(p, `content ${i}`);
  return p;
});

test('one fd per path, shared by concurrent acquirers', async () => {
  const cache = new FdCache(2);
  const [a, b] = await Promise.all([cache.acquire(paths[0]), cache.acquire(paths[0])]);
  assert.is(a.fd, b.fd);
  assert.is(readFileSync(a.fd, 'utf8'), 'content 0');
  assert.is(cache.size, 1);
  assert.is(cache.pinned, 1);
  a.release();
  a.release(); // idempotent
  assert.is(cache.pinned, 1);
  b.release();
  assert.is(cache.pinned, 0);
  await cache.closeIdle();
});

test('the bound closes least recently released fds but never pinned ones', async () => {
  const before = fdSnapshot();
  const cache = new FdCache(2);
  const pinned = await Promise.all(paths.slice(0, 4).map((p) => cache.acquire(p)));
  assert.is(cache.size, 4, 'pinned fds exceed the bound rather than being closed');
  for (const l of pinned) l.release();
  assert.is(cache.size, 2);
  // the two most recently released survive
  const again = await cache.acquire(paths[3]);
  assert.is(again.fd, pinned[3].fd);
  again.release();
  await cache.closeIdle();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(fdsLeftSince(before), []);
});

test('tryAcquire: a lease at once for an open fd, nothing for an unknown or still opening path', async () => {
  const cache = new FdCache(2);
  assert.is(cache.tryAcquire(paths[0]), undefined);
  const opening = cache.acquire(paths[0]);
  assert.is(cache.tryAcquire(paths[0]), undefined, 'the open has not finished');
  const first = await opening;
  const again = cache.tryAcquire(paths[0])!;
  assert.is(again.fd, first.fd);
  first.release();
  assert.is(cache.pinned, 1, 'the second lease still pins the fd');
  // Pinned fds survive going over the bound.
  const others = await Promise.all(paths.slice(1, 4).map((p) => cache.acquire(p)));
  for (const l of others) l.release();
  assert.is(readFileSync(again.fd, 'utf8'), 'content 0');
  again.release();
  assert.is(cache.size, 2);
  await cache.closeIdle();
});

test('a path that cannot be opened rejects and is not cached', async () => {
  const cache = new FdCache(2);
  await cache.acquire(join(dir, 'missing')).then(
    () => assert.unreachable(),
    (e: NodeJS.ErrnoException) => assert.is(e.code, 'ENOENT'),
  );
  assert.is(cache.size, 0);
});

test('cleanup', () => {
  rmSync(dir, { recursive: true, force: true });
});

test.run();
