import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeEntryOut } from '../../../../src/mount/fuse/wire/attr.js';
import * as W from '../../../../src/mount/fuse/wire/dir.js';
import { hex } from '../helpers.js';

test('fuse_dirent records are padded to 8 bytes', () => {
  // ino 1, off 1, namelen 1, type 4 (DT_DIR), "." + 7 bytes padding; then ino 12, off 2,
  // namelen 8, type 8 (DT_REG), "etc.conf" (no padding needed).
  const fixture = hex(`
    0100000000000000 0100000000000000 01000000 04000000 2e00000000000000
    0c00000000000000 0200000000000000 08000000 08000000 6574632e636f6e66`);
  const list = [
    { ino: 1, off: 1, type: 4, name: Buffer.from('.') },
    { ino: 12, off: 2, type: 8, name: Buffer.from('etc.conf') },
  ];
  assert.equal(W.encodeDirents(list), fixture);
  assert.equal(W.decodeDirents(fixture), list);
  assert.is(W.direntSize(1), 32);
  assert.is(W.direntSize(8), 32);
  assert.is(W.direntSize(9), 40);
});

test('fuse_direntplus is a fuse_entry_out followed by a fuse_dirent', () => {
  const entry = decodeEntryOut(Buffer.alloc(128));
  const rec = {
    entry_out: { ...entry, nodeid: 7 },
    dirent: { ino: 7, off: 3, type: 10, name: Buffer.from('ab') },
  };
  const buf = W.encodeDirentplusList([rec]);
  assert.is(buf.length, 128 + 32);
  assert.equal(
    buf.subarray(128),
    hex(`0700000000000000 0300000000000000 02000000 0a000000 6162000000000000`),
  );
  assert.is(buf.readBigUInt64LE(0), 7n);
  assert.equal(W.decodeDirentplusList(buf), [rec]);
  assert.is(W.direntplusSize(2), 160);
});

test.run();
