import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  decodeInHeader,
  decodeNames,
  decodeOutHeader,
  encodeErrorReply,
  encodeInHeader,
  encodeNames,
  encodeOutHeader,
  encodeReply,
} from '../../../../src/mount/fuse/wire/header.js';
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
