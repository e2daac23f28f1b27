import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as W from '../../../../src/mount/fuse/wire/forget.js';
import { hex } from '../helpers.js';

test('fuse_forget_in', () => {
  const b = hex(`0300000000000000`);
  assert.equal(W.decodeForgetIn(b), { nlookup: 3 });
  assert.equal(W.encodeForgetIn({ nlookup: 3 }), b);
});

test('fuse_batch_forget_in + fuse_forget_one[]', () => {
  const b = hex(`02000000 00000000 0500000000000000 0100000000000000 0900000000000000 0200000000000000`);
  const list = [
    { nodeid: 5, nlookup: 1 },
    { nodeid: 9, nlookup: 2 },
  ];
  assert.equal(W.decodeBatchForgetIn(b), list);
  assert.equal(W.encodeBatchForgetIn(list), b);
});

test('a batch whose count exceeds the message yields only the records present', () => {
  const b = hex(`ff000000 00000000 0500000000000000 0100000000000000`);
  assert.equal(W.decodeBatchForgetIn(b), [{ nodeid: 5, nlookup: 1 }]);
});

test.run();
