import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as C from '../../../src/mount/fuse/constants.js';
import { FuseError } from '../../../src/mount/fuse/errors.js';
import { OPCODES } from '../../../src/mount/fuse/opcodes.js';
import { FuseProtocol } from '../../../src/mount/fuse/protocol.js';
import { allocReplyBody, releaseReplyPool, replyPoolSize } from '../../../src/mount/fuse/reply-pool.js';
import type { RawFileSystem, RequestContext } from '../../../src/mount/fuse/raw.js';
import { decodeInitOut, encodeInitIn } from '../../../src/mount/fuse/wire/init.js';
import { encodeInterruptIn } from '../../../src/mount/fuse/wire/interrupt.js';
import { encodeReadIn } from '../../../src/mount/fuse/wire/open.js';
import { encodeGetxattrIn } from '../../../src/mount/fuse/wire/xattr.js';
import { errnoOf, name, reply, request } from './helpers.js';

const ALL_7_45 =
  C.FUSE_ASYNC_READ |
  C.FUSE_BIG_WRITES |
  C.FUSE_PARALLEL_DIROPS |
  C.FUSE_DO_READDIRPLUS |
  C.FUSE_READDIRPLUS_AUTO |
  C.FUSE_CACHE_SYMLINKS |
  C.FUSE_MAX_PAGES |
  C.FUSE_WRITEBACK_CACHE |
  C.FUSE_POSIX_ACL |
  C.FUSE_INIT_EXT |
  C.FUSE_PASSTHROUGH |
  C.FUSE_OVER_IO_URING;

function neverDispatched(_n?: number): never {
  throw new Error('must not be dispatched');
}

function initRequest(minor: number, flags: bigint): Buffer {
  return request(C.FUSE_INIT, encodeInitIn({ major: 7, minor, max_readahead: 131072, flags }, minor < 36));
}

async function ready(fs: RawFileSystem, backing = false): Promise<FuseProtocol> {
  const p = new FuseProtocol(fs, backing ? { backing: { open: () => 1, close: () => undefined } } : {});
  assert.is(errnoOf(await p.handleRequest(initRequest(45, ALL_7_45))), 0);
  return p;
}

test('INIT at 7.45 negotiates the wanted flags, 1 MiB reads and no passthrough without backing', async () => {
  const p = new FuseProtocol({});
  let event: unknown;
  p.on('init', (info) => (event = info));
  const r = reply(await p.handleRequest(initRequest(45, ALL_7_45)));
  assert.is(r.body.length, 64);
  const out = decodeInitOut(r.body);
  assert.is(out.major, 7);
  assert.is(out.minor, 45);
  assert.is(
    out.flags,
    C.FUSE_ASYNC_READ |
      C.FUSE_PARALLEL_DIROPS |
      C.FUSE_DO_READDIRPLUS |
      C.FUSE_READDIRPLUS_AUTO |
      C.FUSE_CACHE_SYMLINKS |
      C.FUSE_MAX_PAGES |
      C.FUSE_INIT_EXT,
  );
  assert.is(out.max_pages, 256);
  assert.is(out.max_write, 1 << 20);
  assert.is(out.max_readahead, 131072);
  assert.is(out.max_stack_depth, 0);
  assert.ok(event);
  assert.is(p.info?.passthrough, false);
});

test('INIT with a backing capability turns on passthrough and a stack depth of 1', async () => {
  const p = new FuseProtocol({}, { backing: { open: () => 1, close: () => undefined } });
  const out = decodeInitOut(reply(await p.handleRequest(initRequest(45, ALL_7_45))).body);
  assert.ok(out.flags & C.FUSE_PASSTHROUGH);
  assert.is(out.max_stack_depth, 1);
  assert.is(p.info?.passthrough, true);
});

test('passthrough is not requested when the kernel does not offer it', async () => {
  const p = new FuseProtocol({}, { backing: { open: () => 1, close: () => undefined } });
  const out = decodeInitOut(
    reply(await p.handleRequest(initRequest(45, ALL_7_45 & ~C.FUSE_PASSTHROUGH))).body,
  );
  assert.is(out.flags & C.FUSE_PASSTHROUGH, 0n);
  assert.is(out.max_stack_depth, 0);
});

test('INIT from 7.31 (16-byte request, no flags2) gets minor 31 and no high flags', async () => {
  const p = new FuseProtocol({}, { backing: { open: () => 1, close: () => undefined } });
  const r = reply(await p.handleRequest(initRequest(31, ALL_7_45 & 0xffffffffn)));
  assert.is(r.body.length, 64);
  const out = decodeInitOut(r.body);
  assert.is(out.minor, 31);
  assert.is(out.flags >> 32n, 0n);
  assert.is(p.info?.passthrough, false);
});

test('INIT from 7.22 gets the 24-byte reply; below 7.12 gets EPROTO', async () => {
  const p = new FuseProtocol({});
  assert.is(reply(await p.handleRequest(initRequest(22, C.FUSE_ASYNC_READ))).body.length, 24);
  assert.is(errnoOf(await new FuseProtocol({}).handleRequest(initRequest(8, 0n))), C.EPROTO);
});

test('INIT from a newer major is answered with our major only', async () => {
  const p = new FuseProtocol({});
  const req = request(C.FUSE_INIT, encodeInitIn({ major: 8, minor: 0, max_readahead: 0, flags: 0n }));
  const r = reply(await p.handleRequest(req));
  assert.is(r.body.length, 8);
  assert.is(r.body.readUInt32LE(0), 7);
  assert.is(p.info, undefined);
});

test('requests before INIT get EIO', async () => {
  let calls = 0;
  const p = new FuseProtocol({ getattr: () => neverDispatched(++calls) });
  assert.is(errnoOf(await p.handleRequest(request(C.FUSE_GETATTR, Buffer.alloc(16)))), C.EIO);
  assert.is(calls, 0);
});

test('short messages get EIO, unknown opcodes ENOSYS, both before dispatch; unique is echoed', async () => {
  let calls = 0;
  const p = await ready({ getattr: () => neverDispatched(++calls) });
  const short = request(C.FUSE_GETATTR, Buffer.alloc(8), { unique: 77n });
  const r = reply(await p.handleRequest(short));
  assert.is(r.header.error, -C.EIO);
  assert.is(r.header.unique, 77n);
  assert.is(errnoOf(await p.handleRequest(request(C.FUSE_GETATTR).subarray(0, 30))), C.EIO);
  assert.is(await p.handleRequest(Buffer.alloc(10)), null);
  // len in the header larger than what arrived
  const lying = request(C.FUSE_READLINK);
  lying.writeUInt32LE(400, 0);
  assert.is(errnoOf(await p.handleRequest(lying)), C.EIO);
  // a LOOKUP whose name has no NUL
  assert.is(errnoOf(await p.handleRequest(request(C.FUSE_LOOKUP, Buffer.from('etc')))), C.EIO);
  assert.is(errnoOf(await p.handleRequest(request(9999))), C.ENOSYS);
  assert.is(errnoOf(await p.handleRequest(request(C.CUSE_INIT))), C.ENOSYS);
  assert.is(calls, 0);
});

test('every mutating opcode answers EROFS', async () => {
  const p = await ready({});
  const mutating = [...OPCODES].filter(([, row]) => row.mutating);
  assert.ok(mutating.length >= 16);
  for (const [opcode, row] of mutating) {
    const body = Buffer.concat([
      Buffer.alloc(row.inSize),
      ...Array.from({ length: row.names }, () => name('x')),
    ]);
    assert.is(errnoOf(await p.handleRequest(request(opcode, body))), C.EROFS, row.name);
  }
});

test('opcodes without a filesystem method answer ENOSYS; fsync and friends have sensible errnos', async () => {
  const p = await ready({});
  assert.is(errnoOf(await p.handleRequest(request(C.FUSE_READLINK))), C.ENOSYS);
  assert.is(errnoOf(await p.handleRequest(request(C.FUSE_FSYNC, Buffer.alloc(16)))), C.ENOSYS);
  assert.is(errnoOf(await p.handleRequest(request(C.FUSE_IOCTL, Buffer.alloc(32)))), C.ENOTTY);
  assert.is(errnoOf(await p.handleRequest(request(C.FUSE_GETLK, Buffer.alloc(48)))), C.ENOSYS);
  assert.is(errnoOf(await p.handleRequest(request(C.FUSE_POLL, Buffer.alloc(24)))), C.ENOSYS);
  assert.is(errnoOf(await p.handleRequest(request(C.FUSE_BMAP, Buffer.alloc(16)))), C.ENOSYS);
  assert.is(errnoOf(await p.handleRequest(request(C.FUSE_SYNCFS, Buffer.alloc(8)))), 0);
});

test('with NO_OPENDIR_SUPPORT offered, OPENDIR answers ENOSYS so the kernel stops sending it', async () => {
  const opendir = () => ({ fh: 0, open_flags: C.FOPEN_CACHE_DIR, backing_id: 0 });
  const offered = new FuseProtocol({ opendir });
  const init = reply(await offered.handleRequest(initRequest(45, ALL_7_45 | C.FUSE_NO_OPENDIR_SUPPORT)));
  assert.ok(decodeInitOut(init.body).flags & C.FUSE_NO_OPENDIR_SUPPORT);
  assert.is(errnoOf(await offered.handleRequest(request(C.FUSE_OPENDIR, Buffer.alloc(8)))), C.ENOSYS);
  // An older kernel would fail every opendir on ENOSYS: it still gets real OPENDIR replies.
  const older = await ready({ opendir });
  assert.is(errnoOf(await older.handleRequest(request(C.FUSE_OPENDIR, Buffer.alloc(8)))), 0);
});

test('synchronous handlers are answered synchronously (no promise, no extra event-loop turn)', async () => {
  const p = await ready({ readlink: () => Buffer.from('target') });
  const out = p.handle(request(C.FUSE_READLINK));
  assert.ok(Buffer.isBuffer(out));
  assert.equal(reply(out as Buffer).body, Buffer.from('target'));
  assert.ok(Buffer.isBuffer(p.handle(request(C.FUSE_READLINK, Buffer.alloc(0), { nodeid: 0 }))));
  assert.is(p.inflightCount, 0);
  const slow = await ready({ readlink: async () => Buffer.from('later') });
  const pending = slow.handle(request(C.FUSE_READLINK));
  assert.instance(pending, Promise);
  assert.equal(reply((await pending)!).body, Buffer.from('later'));
});

test('FORGET, BATCH_FORGET and INTERRUPT get no reply', async () => {
  const forgot: [number, number][] = [];
  const p = await ready({ forget: (n, k) => void forgot.push([n, k]) });
  assert.is(
    await p.handleRequest(request(C.FUSE_FORGET, Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), { nodeid: 9 })),
    null,
  );
  assert.is(await p.handleRequest(request(C.FUSE_INTERRUPT, encodeInterruptIn({ unique: 123456n }))), null);
  assert.equal(forgot, [[9, 2]]);
  assert.is(await p.handleRequest(request(C.FUSE_FORGET, Buffer.alloc(2))), null);
});

test('GETXATTR: size 0 probes the length, too small is ERANGE, a FuseError passes its errno', async () => {
  const p = await ready({
    getxattr: (_c, _n, key) => {
      if (key !== 'user.k') throw new FuseError(C.ENODATA);
      return Buffer.from('value');
    },
  });
  const ask = (key: string, size: number) =>
    p.handleRequest(request(C.FUSE_GETXATTR, Buffer.concat([encodeGetxattrIn({ size }), name(key)])));
  assert.is(reply(await ask('user.k', 0)).body.readUInt32LE(0), 5);
  assert.is(errnoOf(await ask('user.k', 3)), C.ERANGE);
  assert.equal(reply(await ask('user.k', 64)).body, Buffer.from('value'));
  assert.is(errnoOf(await ask('user.none', 64)), C.ENODATA);
});

test('INTERRUPT of an in-flight READ answers it EINTR and the late result is dropped', async () => {
  let finish!: (b: Buffer) => void;
  let sawAbort = false;
  const p = await ready({
    read: (ctx: RequestContext) => {
      ctx.signal.addEventListener('abort', () => (sawAbort = true));
      return new Promise<Buffer>((resolve) => (finish = resolve));
    },
  });
  const readReq = request(
    C.FUSE_READ,
    encodeReadIn({ fh: 1, offset: 0, size: 10, read_flags: 0, lock_owner: 0n, flags: 0 }),
    { unique: 500n },
  );
  const pending = p.handleRequest(readReq);
  await new Promise((r) => setImmediate(r));
  assert.is(p.inflightCount, 1);
  assert.is(await p.handleRequest(request(C.FUSE_INTERRUPT, encodeInterruptIn({ unique: 500n }))), null);
  const r = reply(await pending);
  assert.is(r.header.error, -C.EINTR);
  assert.is(r.header.unique, 500n);
  assert.ok(sawAbort);
  finish(Buffer.from('late'));
  await new Promise((r2) => setImmediate(r2));
  assert.is(p.inflightCount, 0);
});

function readRequest(unique: bigint): Buffer {
  return request(
    C.FUSE_READ,
    encodeReadIn({ fh: 1, offset: 0, size: 10, read_flags: 0, lock_owner: 0n, flags: 0 }),
    { unique },
  );
}

test('INTERRUPT after the reply changes nothing; one before it wins over the late result', async () => {
  const finish: ((b: Buffer) => void)[] = [];
  const signals: AbortSignal[] = [];
  const p = await ready({
    read: () => new Promise<Buffer>((resolve) => finish.push(resolve)),
    readlink: (ctx) => {
      signals.push(ctx.signal);
      return Buffer.from('sync');
    },
  });
  // Answered: an INTERRUPT for it is ignored and no second reply is made.
  const done = p.handleRequest(readRequest(600n));
  finish[0](Buffer.from('data'));
  assert.equal(reply(await done).body, Buffer.from('data'));
  assert.is(p.inflightCount, 0);
  assert.is(await p.handleRequest(request(C.FUSE_INTERRUPT, encodeInterruptIn({ unique: 600n }))), null);
  // A synchronous answer is never tracked, so its signal is never aborted either.
  assert.equal(
    reply(await p.handleRequest(request(C.FUSE_READLINK, Buffer.alloc(0), { unique: 601n }))).body,
    Buffer.from('sync'),
  );
  assert.is(await p.handleRequest(request(C.FUSE_INTERRUPT, encodeInterruptIn({ unique: 601n }))), null);
  assert.not.ok(signals[0].aborted);
  // Interrupted first: EINTR at once; the pooled body of the late result goes back to the pool.
  const pending = p.handleRequest(readRequest(602n));
  assert.is(await p.handleRequest(request(C.FUSE_INTERRUPT, encodeInterruptIn({ unique: 602n }))), null);
  assert.is(errnoOf(await pending), C.EINTR);
  releaseReplyPool();
  const late = allocReplyBody(100_000);
  finish[1](late);
  await new Promise((r) => setImmediate(r));
  assert.is(replyPoolSize(), 1);
  assert.is(allocReplyBody(100_000).buffer, late.buffer);
  assert.is(p.inflightCount, 0);
});

test('a handler that reads the signal after its request was interrupted finds it aborted', async () => {
  let ctxSeen!: RequestContext;
  let finish!: () => void;
  const p = await ready({
    read: (ctx) => {
      ctxSeen = ctx;
      return new Promise<Buffer>((resolve) => (finish = () => resolve(Buffer.alloc(0))));
    },
  });
  const pending = p.handleRequest(readRequest(700n));
  assert.is(await p.handleRequest(request(C.FUSE_INTERRUPT, encodeInterruptIn({ unique: 700n }))), null);
  assert.ok(ctxSeen.signal.aborted);
  assert.is(errnoOf(await pending), C.EINTR);
  finish();
});

test('unique ids above 2^32 and 2^53 are echoed exactly and can be interrupted', async () => {
  const finish: (() => void)[] = [];
  const p = await ready({
    read: () => new Promise<Buffer>((resolve) => finish.push(() => resolve(Buffer.from('x')))),
  });
  for (const unique of [2n ** 32n + 7n, 2n ** 53n - 1n, 2n ** 53n + 1n, 2n ** 64n - 2n]) {
    const ok = p.handleRequest(readRequest(unique));
    finish.shift()!();
    assert.is(reply(await ok).header.unique, unique);
    const cut = p.handleRequest(readRequest(unique + 1n));
    assert.is(p.inflightCount, 1);
    assert.is(
      await p.handleRequest(request(C.FUSE_INTERRUPT, encodeInterruptIn({ unique: unique + 1n }))),
      null,
    );
    const r = reply(await cut);
    assert.is(r.header.error, -C.EINTR);
    assert.is(r.header.unique, unique + 1n);
    finish.shift()!();
  }
  assert.is(errnoOf(await p.handleRequest(request(9999, Buffer.alloc(0), { unique: 2n ** 63n }))), C.ENOSYS);
  await new Promise((r) => setImmediate(r));
  assert.is(p.inflightCount, 0);
});

test('DESTROY answers every other request in flight EINTR', async () => {
  const p = await ready({ read: () => new Promise<Buffer>(() => undefined), destroy: () => undefined });
  const a = p.handleRequest(readRequest(800n));
  const b = p.handleRequest(readRequest(801n));
  assert.is(errnoOf(await p.handleRequest(request(C.FUSE_DESTROY))), 0);
  assert.is(errnoOf(await a), C.EINTR);
  assert.is(errnoOf(await b), C.EINTR);
  assert.is(p.inflightCount, 0);
});

test('a handler that throws something unexpected gives EIO and a coded warning', async () => {
  const p = await ready({
    readlink: () => {
      throw new TypeError('boom');
    },
  });
  const warnings: { code: string; opcode: string }[] = [];
  p.on('warn', (w) => warnings.push(w));
  assert.is(errnoOf(await p.handleRequest(request(C.FUSE_READLINK))), C.EIO);
  assert.equal(
    warnings.map((w) => [w.code, w.opcode]),
    [['handler-failed', 'READLINK']],
  );
});

test('DESTROY replies, tells the filesystem and emits destroy', async () => {
  let destroyed = 0;
  const p = await ready({ destroy: () => void destroyed++ });
  let events = 0;
  p.on('destroy', () => events++);
  const r = reply(await p.handleRequest(request(C.FUSE_DESTROY)));
  assert.is(r.header.error, 0);
  assert.is(r.body.length, 0);
  assert.is(destroyed, 1);
  assert.is(events, 1);
  assert.ok(p.isDestroyed);
});

test('fuzz: thousands of random and truncated messages never throw out of handleRequest', async () => {
  const p = await ready({
    lookup: () => {
      throw new FuseError(C.ENOENT);
    },
    getattr: () => {
      throw new Error('unexpected');
    },
    forget: () => undefined,
    read: async () => Buffer.alloc(0),
  });
  p.on('warn', () => undefined);
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const opcodes = [...OPCODES.keys(), 0, 99, 4096, 0xffffffff];
  for (let i = 0; i < 5000; i++) {
    const body = Buffer.alloc(rand(200));
    for (let j = 0; j < body.length; j++) body[j] = rand(256);
    let req = request(opcodes[rand(opcodes.length)], body, { nodeid: rand(5) });
    if (rand(3) === 0) req = req.subarray(0, rand(req.length + 1));
    if (rand(5) === 0) req.writeUInt32LE(rand(500), 0);
    const out = await p.handleRequest(req);
    if (out) assert.is(reply(out).header.len, out.length);
  }
});

test.run();
