import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeStatfsOut, encodeStatfsOut } from '../../../../src/mount/fuse/wire/statfs.js';
import { hex } from '../helpers.js';

test('fuse_statfs_out is fuse_kstatfs: 5 u64, bsize, namelen, frsize, padding, spare[6]', () => {
  const st = {
    blocks: 100,
    bfree: 0,
    bavail: 0,
    files: 9,
    ffree: 0,
    bsize: 4096,
    namelen: 255,
    frsize: 4096,
  };
  const fixture = Buffer.concat([
    hex(`6400000000000000 0000000000000000 0000000000000000 0900000000000000 0000000000000000`),
    hex(`00100000 ff000000 00100000 00000000`),
    Buffer.alloc(24),
  ]);
  assert.equal(encodeStatfsOut(st), fixture);
  assert.equal(decodeStatfsOut(fixture), st);
});

test.run();
