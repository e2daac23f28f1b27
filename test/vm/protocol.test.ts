// The agent protocol as bytes: framing, the hunt for HELLO past stale bytes, stale sessions,
// malformed and oversized frames, EXEC records.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import {
  FRAME,
  FrameDecoder,
  HEADER_SIZE,
  MAX_PAYLOAD,
  ProtocolError,
  VM,
  channelOf,
  decodeExec,
  decodeExit,
  decodeHello,
  encodeExec,
  encodeExit,
  encodeFrame,
  encodeHello,
  encodeTreeChunks,
  sessionOf,
  splitChannel,
} from '../../src/vm/protocol.js';

const nonce = 0x1122334455667788n;
const session = sessionOf(nonce);
const hello = encodeFrame(
  FRAME.hello,
  session,
  0,
  encodeHello({ version: VM.version, nonce, info: 'arch=x' }),
);

test('frames round-trip, one byte at a time too', () => {
  const d = new FrameDecoder();
  d.expect(session);
  const data = encodeFrame(FRAME.data, session, channelOf(3, 2), Buffer.from('hello'));
  const bytes = Buffer.concat([hello, data]);
  const frames = [];
  for (const b of bytes) frames.push(...d.push(Buffer.from([b])));
  assert.is(frames.length, 2);
  assert.equal(decodeHello(frames[0].payload), { version: VM.version, nonce, info: 'arch=x' });
  assert.is(frames[1].payload.toString(), 'hello');
  assert.equal(splitChannel(frames[1].channel), { proc: 3, kind: 2 });
});

test('bytes of an earlier session before HELLO are skipped, even a half frame', () => {
  const d = new FrameDecoder();
  d.expect(session);
  const old = encodeFrame(FRAME.data, 0xdead, channelOf(1, 2), Buffer.alloc(100, 7));
  const oldHello = encodeFrame(FRAME.hello, 0xdead, 0, encodeHello({ version: 1, nonce: 0xdeadn, info: '' }));
  const frames = d.push(Buffer.concat([old.subarray(40), oldHello, old, hello]));
  assert.is(frames.length, 1);
  assert.is(frames[0].type, FRAME.hello);
  assert.ok(d.staleBytes > 100);
});

test('after HELLO a frame of another session is dropped and counted', () => {
  const d = new FrameDecoder();
  d.expect(session);
  d.push(hello);
  const frames = d.push(
    Buffer.concat([
      encodeFrame(FRAME.data, session + 1, 4, Buffer.from('stale')),
      encodeFrame(FRAME.data, session, 4, Buffer.from('fresh')),
    ]),
  );
  assert.equal(
    frames.map((f) => f.payload.toString()),
    ['fresh'],
  );
  assert.is(d.staleFrames, 1);
});

test('a bad magic after HELLO is a protocol error', () => {
  const d = new FrameDecoder();
  d.expect(session);
  d.push(hello);
  assert.throws(
    () => d.push(Buffer.alloc(HEADER_SIZE, 0x41)),
    (e: unknown) => e instanceof ProtocolError,
  );
});

test('an oversized frame is refused on both sides', () => {
  const d = new FrameDecoder();
  d.expect(session);
  d.push(hello);
  const head = Buffer.alloc(HEADER_SIZE);
  head.writeUInt16LE(VM.magic, 0);
  head.writeUInt8(FRAME.data, 2);
  head.writeUInt32LE(session, 4);
  head.writeUInt32LE(MAX_PAYLOAD + 1, 12);
  assert.throws(() => d.push(head), /exceeds/);
  assert.throws(() => encodeFrame(FRAME.data, session, 4, Buffer.alloc(MAX_PAYLOAD + 1)), /exceeds/);
});

test('EXEC records round-trip; NUL bytes and empty commands are refused', () => {
  const spec = {
    argv: ['sh', '-c', 'echo hi'],
    env: ['A=1', 'PATH=/bin'],
    cwd: '/tmp',
    uid: 1000,
    gid: 100,
    fuseRoot: true,
    tty: { rows: 24, cols: 80 },
    hostname: 'box',
  };
  assert.equal(decodeExec(encodeExec(spec)), spec);
  assert.throws(() => encodeExec({ argv: ['a\0b'], env: [] }), /NUL/);
  assert.throws(() => encodeExec({ argv: [], env: [] }), /no command/);
  const bad = encodeExec({ argv: ['x'], env: [] });
  bad.writeUInt32LE(1000, 1);
  assert.throws(() => decodeExec(bad), /overruns/);
});

test('a tree record and -d round-trip in EXEC; a tree index goes in ordered chunks of at most a frame', () => {
  const geometry = {
    inodeCount: 10,
    direntCount: 9,
    xattrCount: 0,
    poolSize: 100,
    inodesOff: 64,
    direntsOff: 704,
    xattrsOff: 812,
    poolOff: 812,
    objectCount: 2,
    objectsOff: 912,
  };
  const tree = { id: 3, entryTimeout: 86400, attrTimeout: 60, xattrEnosys: true, geometry, deferred: [1, 7] };
  const spec = { argv: ['true'], env: [], fuseRoot: true, tree, detach: true };
  assert.equal(decodeExec(encodeExec(spec)), spec);
  const index = Buffer.alloc(MAX_PAYLOAD * 2 + 5, 7);
  const chunks = encodeTreeChunks(5, index);
  assert.is(chunks.length, 3);
  let off = 0;
  for (const c of chunks) {
    assert.ok(c.length <= MAX_PAYLOAD);
    assert.is(c.readUInt32LE(0), 5);
    assert.is(c.readUInt32LE(4), index.length);
    assert.is(c.readUInt32LE(8), off);
    off += c.length - 16;
  }
  assert.is(off, index.length);
  assert.throws(() => encodeTreeChunks(1, Buffer.alloc(0)), /cannot go to the VM/);
  assert.throws(() => encodeTreeChunks(1, Buffer.alloc(VM.tree.maxBytes + 1)), /cannot go to the VM/);
});

test('EXIT carries a code and the signal', () => {
  assert.equal(decodeExit(encodeExit({ code: 137, signal: 9 })), { code: 137, signal: 9 });
  assert.equal(decodeExit(encodeExit({ code: 3 })), { code: 3 });
  assert.throws(
    () => decodeExit(Buffer.alloc(3)),
    (e: unknown) => e instanceof ProtocolError,
  );
});

test.run();
