import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  allocWithHeadroom,
  decodeInHeader,
  decodeNames,
  decodeOutHeader,
  encodeErrorReply,
  encodeInHeader,
  encodeNames,
  encodeOutHeader,
  encodeReply,
  FUSE_OUT_HEADER_SIZE,
  readUnique,
  writeUnique,
} from '../../../../src/mount/fuse/wire/header.js';
import { allocReplyBody } from '../../../../src/mount/fuse/reply-pool.js';
import { hex } from '../helpers.js';

// fuse_in_header: len 48, opcode 1 (LOOKUP), unique 0x0102030405060708, nodeid 1, uid 1000,
// gid 100, pid 4242, total_extlen 0, padding 0.
const IN = hex(`30000000 01000000 0807060504030201 0100000000000000 e8030000 64000000 92100000 0000 0000`);

test('fuse_in_header round-trips against the kernel layout', () => {
  const h = decodeInHeader(IN);
  assert.equal(h, {
    len: 48,
    opcode: 1,
    unique: 0x0102030405060708n,
    nodeid: 1,
    uid: 1000,
    gid: 100,
    pid: 4242,
    total_extlen: 0,
  });
  assert.equal(encodeInHeader(h), IN);
});

test('fuse_out_header carries a negated errno and echoes unique', () => {
  const fixture = hex(`10000000 feffffff 0807060504030201`); // len 16, error -2 (ENOENT)
  assert.equal(decodeOutHeader(fixture), { len: 16, error: -2, unique: 0x0102030405060708n });
  assert.equal(encodeOutHeader(decodeOutHeader(fixture)), fixture);
  assert.equal(encodeErrorReply(0x0102030405060708n, 2), fixture);
});

test('encodeReply prefixes the body with a header of the total length', () => {
  assert.equal(encodeReply(7n, Buffer.from('ab')), hex(`12000000 00000000 0700000000000000 6162`));
});

test('a body from allocReplyBody gets its header in place: same memory, same bytes as a copy', () => {
  for (const size of [10, 200_000]) {
    const body = allocReplyBody(size).fill(7);
    const short = body.subarray(0, size - 3); // a short read keeps the headroom
    const out = encodeReply(42n, short);
    assert.is(out.buffer, body.buffer);
    assert.equal(out, encodeReply(42n, Buffer.from(short)));
    assert.equal(decodeOutHeader(out), { len: 16 + size - 3, error: 0, unique: 42n });
    // Not at the body's start: no headroom in front, so the body is copied.
    assert.is.not(encodeReply(1n, body.subarray(1)).buffer, body.buffer);
  }
});

test('memory from allocWithHeadroom takes the header in front of the body; other memory is copied', () => {
  const body = Buffer.from(allocWithHeadroom(8), FUSE_OUT_HEADER_SIZE, 8).fill(9);
  const out = encodeReply(5, body);
  assert.is(out.buffer, body.buffer);
  assert.equal(out, hex(`18000000 00000000 0500000000000000 0909090909090909`));
  // Same offset into memory that has no headroom (a slice of a bigger buffer): copied, not overwritten.
  const plain = Buffer.alloc(24, 1).subarray(FUSE_OUT_HEADER_SIZE);
  assert.is.not(encodeReply(5, plain).buffer, plain.buffer);
  assert.ok(Buffer.from(plain.buffer, 0, FUSE_OUT_HEADER_SIZE).every((b) => b === 1));
});

test('unique ids are Numbers while exact and BigInts above 2^53, written back bit for bit', () => {
  const buf = Buffer.alloc(8);
  for (const [bits, want] of [
    [7n, 7],
    [2n ** 32n + 5n, 2 ** 32 + 5],
    [2n ** 53n - 1n, 2 ** 53 - 1],
    [2n ** 53n, 2n ** 53n],
    [2n ** 64n - 1n, 2n ** 64n - 1n],
  ] as const) {
    buf.writeBigUInt64LE(bits, 0);
    assert.is(readUnique(buf, 0), want);
    const out = Buffer.alloc(8);
    writeUnique(out, 0, want);
    assert.equal(out, buf);
    assert.is(decodeOutHeader(encodeErrorReply(want, 2)).unique, bits);
    assert.is(decodeOutHeader(encodeReply(want, Buffer.from('x'))).unique, bits);
  }
});

test('names are NUL-terminated; an unterminated one is rejected', () => {
  const buf = encodeNames(['old', 'new']);
  assert.equal(buf, hex('6f6c6400 6e657700'));
  const split = decodeNames(Buffer.concat([buf, Buffer.from('value')]), 2)!;
  assert.equal(
    split.names.map((n) => n.toString()),
    ['old', 'new'],
  );
  assert.is(split.rest.toString(), 'value');
  assert.is(decodeNames(Buffer.from('abc'), 1), undefined);
});

test.run();
