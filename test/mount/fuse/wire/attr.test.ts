import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  decodeAccessIn,
  decodeAttrOut,
  decodeEntryOut,
  decodeGetattrIn,
  encodeAccessIn,
  encodeAttrOut,
  encodeEntryOut,
  encodeGetattrIn,
  FUSE_ATTR_OUT_SIZE,
  FUSE_ENTRY_OUT_SIZE,
} from '../../../../src/mount/fuse/wire/attr.js';
import { hex } from '../helpers.js';

const attr = {
  ino: 5,
  size: 1000,
  blocks: 2,
  atime: 1700000000,
  mtime: 1700000000,
  ctime: 1700000000,
  atimensec: 7,
  mtimensec: 7,
  ctimensec: 7,
  mode: 0o100644,
  nlink: 1,
  uid: 1000,
  gid: 100,
  rdev: 0,
  blksize: 4096,
  flags: 0,
};
// fuse_attr: ino, size, blocks, atime, mtime, ctime (u64), then the ten u32 fields.
const ATTR = hex(`
  0500000000000000 e803000000000000 0200000000000000
  00f1536500000000 00f1536500000000 00f1536500000000
  07000000 07000000 07000000 a4810000 01000000 e8030000 64000000 00000000 00100000 00000000`);

test('fuse_entry_out: node id, generation, timeouts, then fuse_attr', () => {
  const e = {
    nodeid: 5,
    generation: 0,
    entry_valid: 86400,
    attr_valid: 86400,
    entry_valid_nsec: 0,
    attr_valid_nsec: 0,
    attr,
  };
  const fixture = Buffer.concat([
    hex(`0500000000000000 0000000000000000 8051010000000000 8051010000000000 00000000 00000000`),
    ATTR,
  ]);
  assert.is(fixture.length, FUSE_ENTRY_OUT_SIZE);
  assert.equal(encodeEntryOut(e), fixture);
  assert.equal(decodeEntryOut(fixture), e);
});

test('fuse_attr_out: timeout, nsec, dummy, then fuse_attr', () => {
  const v = { attr_valid: 86400, attr_valid_nsec: 0, attr };
  const fixture = Buffer.concat([hex(`8051010000000000 00000000 00000000`), ATTR]);
  assert.is(fixture.length, FUSE_ATTR_OUT_SIZE);
  assert.equal(encodeAttrOut(v), fixture);
  assert.equal(decodeAttrOut(fixture), v);
});

test('pre-1970 times survive as signed values', () => {
  const old = { ...attr, mtime: -1, atime: -1, ctime: -1 };
  const e = { attr_valid: 1, attr_valid_nsec: 0, attr: old };
  assert.equal(decodeAttrOut(encodeAttrOut(e)).attr.mtime, -1);
});

test('fuse_getattr_in and fuse_access_in', () => {
  const g = hex(`01000000 00000000 0900000000000000`);
  assert.equal(decodeGetattrIn(g), { getattr_flags: 1, fh: 9n });
  assert.equal(encodeGetattrIn(decodeGetattrIn(g)), g);
  const a = hex(`04000000 00000000`);
  assert.equal(decodeAccessIn(a), { mask: 4 });
  assert.equal(encodeAccessIn({ mask: 4 }), a);
});

test.run();
