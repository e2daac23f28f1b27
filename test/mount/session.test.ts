import { randomBytes } from 'node:crypto';
import { closeSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { createDetachedMount } from '../../src/mount/detached.js';
import type { SessionWarning } from '../../src/mount/session.js';
import { fdSnapshot, fdsLeftSince, MiniFuse, threadCount, waitFor } from '../native/mini-fuse.js';

const OP_READ = 15;

test('async handlers: replies may complete out of order', async () => {
  const fs = new MiniFuse({ a: 'A', b: 'B', c: 'C' });
  let n = 0;
  const m = await createDetachedMount({
    handler: {
      handle: async (req) => {
        // Later requests overtake earlier ones.
        await new Promise((r) => setTimeout(r, (3 - (n++ % 3)) * 5));
        return fs.handle(req);
      },
    },
  });
  const root = `/proc/self/fd/${m.mountFd}`;
  const texts = await Promise.all(['a', 'b', 'c', 'a', 'b'].map((f) => readFile(`${root}/${f}`, 'utf8')));
  assert.equal(texts, ['A', 'B', 'C', 'A', 'B']);
  closeSync(m.mountFd);
  assert.equal(await m.session.ended, { reason: 'unmounted' });
});

test('large replies (written on the pool) arrive intact; the end waits for them', async () => {
  const big = randomBytes(3 * 1024 * 1024 + 123);
  const fs = new MiniFuse({ big });
  const fds = fdSnapshot();
  const m = await createDetachedMount({ handler: fs });
  const root = `/proc/self/fd/${m.mountFd}`;
  const copies = await Promise.all([readFile(`${root}/big`), readFile(`${root}/big`)]);
  for (const c of copies) assert.ok(c.equals(big));
  assert.ok(fs.seen(OP_READ) >= 2);
  closeSync(m.mountFd);
  assert.equal(await m.session.ended, { reason: 'unmounted' });
  assert.equal(fdsLeftSince(fds), []);
});

test('a failing handler gets the caller EIO and a warning, and the session goes on', async () => {
  const fs = new MiniFuse({ a: 'A' });
  const warnings: SessionWarning[] = [];
  const m = await createDetachedMount({
    handler: {
      handle: (req) => {
        if (req.readUInt32LE(4) === OP_READ) throw new Error('object store unavailable');
        return fs.handle(req);
      },
    },
  });
  m.session.on('warn', (w: SessionWarning) => warnings.push(w));
  const root = `/proc/self/fd/${m.mountFd}`;
  try {
    await readFile(`${root}/a`);
    assert.unreachable('READ failed');
  } catch (err) {
    assert.is((err as NodeJS.ErrnoException).code, 'EIO');
  }
  assert.is(warnings[0]?.code, 'handler-failed');
  assert.match(warnings[0].message, /object store unavailable/);
  assert.equal(await readdir(root), ['a'], 'still serving');
  closeSync(m.mountFd);
  assert.equal(await m.session.ended, { reason: 'unmounted' });
});

test('a malformed reply is a warning, not a crash', async () => {
  const fs = new MiniFuse({ a: 'A' });
  const warnings: SessionWarning[] = [];
  let broken = false;
  const m = await createDetachedMount({
    handler: {
      handle: (req) => {
        const reply = fs.handle(req);
        if (broken && reply) return reply.subarray(0, 8); // shorter than a reply header
        return reply;
      },
    },
  });
  m.session.on('warn', (w: SessionWarning) => warnings.push(w));
  await readdir(`/proc/self/fd/${m.mountFd}`);
  broken = true;
  const pending = readFile(`/proc/self/fd/${m.mountFd}/a`).catch((e: NodeJS.ErrnoException) => e.code);
  assert.ok(await waitFor(() => warnings.length > 0));
  assert.is(warnings[0].code, 'reply-failed');
  await m.session.close(); // aborts the stuck request too
  assert.ok(typeof (await pending) === 'string', 'the caller got an error');
  closeSync(m.mountFd);
});

test('sessions end independently; every end leaves no thread or fd (either reader)', async () => {
  const threads = threadCount();
  const fds = fdSnapshot();
  const a = await createDetachedMount({ handler: new MiniFuse({ x: 'a' }), reader: 'thread' });
  const b = await createDetachedMount({ handler: new MiniFuse({ x: 'b' }) });
  assert.is(threadCount(), threads + 1, "a's reader thread; b is polled on the JS thread");
  assert.is(await readFile(`/proc/self/fd/${a.mountFd}/x`, 'utf8'), 'a');
  let ends = 0;
  a.session.on('end', () => ends++);
  closeSync(a.mountFd);
  assert.equal(await a.session.ended, { reason: 'unmounted' });
  assert.is(await readFile(`/proc/self/fd/${b.mountFd}/x`, 'utf8'), 'b');
  assert.equal(await b.session.close(), { reason: 'closed' });
  assert.equal(await b.session.close(), { reason: 'closed' }, 'close is idempotent');
  closeSync(b.mountFd);
  assert.is(ends, 1);
  assert.ok(await waitFor(() => threadCount() === threads));
  assert.equal(fdsLeftSince(fds), []);
});

test.run();
