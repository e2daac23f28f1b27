import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as W from '../../../../src/mount/fuse/wire/lseek.js';
import { hex } from '../helpers.js';

test('fuse_lseek_in / fuse_lseek_out', () => {
  const inp = hex(`0200000000000000 0010000000000000 04000000 00000000`); // fh 2, 4096, SEEK_HOLE
  assert.equal(W.decodeLseekIn(inp), { fh: 2, offset: 4096, whence: 4 });
  assert.equal(W.encodeLseekIn(W.decodeLseekIn(inp)), inp);
  const out = hex(`0020000000000000`);
  assert.equal(W.decodeLseekOut(out), { offset: 8192 });
  assert.equal(W.encodeLseekOut({ offset: 8192 }), out);
});

test.run();
