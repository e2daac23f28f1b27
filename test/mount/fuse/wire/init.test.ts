import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FUSE_PASSTHROUGH, FUSE_ASYNC_READ, FUSE_INIT_EXT } from '../../../../src/mount/fuse/constants.js';
import {
  decodeInitIn,
  decodeInitOut,
  encodeInitIn,
  encodeInitOut,
  initOutSize,
} from '../../../../src/mount/fuse/wire/init.js';
import { hex } from '../helpers.js';

// fuse_init_in 7.45: major 7, minor 45, max_readahead 128 KiB, flags ASYNC_READ|INIT_EXT,
// flags2 bit 5 (PASSTHROUGH), unused[11].
const INIT_IN = Buffer.concat([hex(`07000000 2d000000 00000200 01000040 20000000`), Buffer.alloc(44)]);

test('fuse_init_in with flags2 round-trips', () => {
  const v = decodeInitIn(INIT_IN);
  assert.equal(v, {
    major: 7,
    minor: 45,
    max_readahead: 131072,
    flags: FUSE_ASYNC_READ | FUSE_INIT_EXT | FUSE_PASSTHROUGH,
  });
  assert.equal(encodeInitIn(v), INIT_IN);
});

test('the 16-byte fuse_init_in of an old kernel has no flags2', () => {
  const old = hex(`07000000 1f000000 00000200 01000000`);
  assert.equal(decodeInitIn(old), { major: 7, minor: 31, max_readahead: 131072, flags: FUSE_ASYNC_READ });
  assert.equal(encodeInitIn(decodeInitIn(old), true), old);
});

test('fuse_init_out is laid out as in the header and sized by minor', () => {
  const v = {
    major: 7,
    minor: 45,
    max_readahead: 131072,
    flags: FUSE_ASYNC_READ | FUSE_INIT_EXT | FUSE_PASSTHROUGH,
    max_background: 64,
    congestion_threshold: 48,
    max_write: 1048576,
    time_gran: 1,
    max_pages: 256,
    map_alignment: 0,
    max_stack_depth: 1,
    request_timeout: 0,
  };
  const fixture = Buffer.concat([
    hex(`07000000 2d000000 00000200 01000040 4000 3000 00001000 01000000 0001 0000 20000000 01000000 0000`),
    Buffer.alloc(22),
  ]);
  assert.equal(encodeInitOut(v), fixture);
  assert.equal(decodeInitOut(fixture), v);
  assert.is(initOutSize(4), 8);
  assert.is(initOutSize(22), 24);
  assert.is(initOutSize(23), 64);
  assert.is(encodeInitOut({ ...v, minor: 22 }).length, 24);
});

test.run();
