import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as W from '../../../../src/mount/fuse/wire/open.js';
import { hex } from '../helpers.js';

test('fuse_open_in', () => {
  const b = hex(`00800000 00000000`); // O_RDONLY|O_LARGEFILE
  assert.equal(W.decodeOpenIn(b), { flags: 0o100000, open_flags: 0 });
  assert.equal(W.encodeOpenIn(W.decodeOpenIn(b)), b);
});

test('fuse_open_out carries backing_id where 7.39 had padding', () => {
  const b = hex(`0300000000000000 80000000 05000000`); // fh 3, FOPEN_PASSTHROUGH, backing id 5
  assert.equal(W.decodeOpenOut(b), { fh: 3, open_flags: 0x80, backing_id: 5 });
  assert.equal(W.encodeOpenOut(W.decodeOpenOut(b)), b);
});

test('fuse_read_in', () => {
  const b = hex(`0200000000000000 0010000000000000 00000100 00000000 0000000000000000 00800000 00000000`);
  const v = W.decodeReadIn(b);
  assert.equal(v, { fh: 2, offset: 4096, size: 65536, read_flags: 0, lock_owner: 0, flags: 0o100000 });
  assert.equal(W.encodeReadIn(v), b);
});

test('fuse_release_in, fuse_flush_in, fuse_fsync_in', () => {
  const r = hex(`0400000000000000 00800000 00000000 0000000000000000`);
  assert.equal(W.decodeReleaseIn(r), { fh: 4, flags: 0o100000, release_flags: 0, lock_owner: 0 });
  assert.equal(W.encodeReleaseIn(W.decodeReleaseIn(r)), r);
  const f = hex(`0400000000000000 00000000 00000000 0900000000000000`);
  assert.equal(W.decodeFlushIn(f), { fh: 4, lock_owner: 9 });
  assert.equal(W.encodeFlushIn(W.decodeFlushIn(f)), f);
  const s = hex(`0400000000000000 01000000 00000000`);
  assert.equal(W.decodeFsyncIn(s), { fh: 4, fsync_flags: 1 });
  assert.equal(W.encodeFsyncIn(W.decodeFsyncIn(s)), s);
});

test.run();
