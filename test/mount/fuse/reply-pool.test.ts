import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  allocReplyBody,
  recycleReply,
  releaseIdleReplyPool,
  releaseReplyPool,
  replyPoolSize,
  residentReplyPoolSize,
} from '../../../src/mount/fuse/reply-pool.js';
import { encodeReply } from '../../../src/mount/fuse/wire/header.js';

test('reply bodies up to 1 MiB are reused once recycled, larger ones never', () => {
  releaseReplyPool();
  const big = allocReplyBody(1 << 20);
  const out = encodeReply(1n, big);
  recycleReply(out);
  recycleReply(out); // twice is harmless: the memory is pooled once
  const again = allocReplyBody(300_000);
  assert.is(again.buffer, big.buffer);
  assert.is.not(allocReplyBody(300_000).buffer, big.buffer);
  // Small bodies too (READDIR, a random 4 KiB read): one ArrayBuffer each piled up in malloc's heap.
  const small = allocReplyBody(100);
  recycleReply(encodeReply(2n, small));
  assert.is(allocReplyBody(4096).buffer, small.buffer);
  const huge = allocReplyBody((1 << 20) + 1);
  recycleReply(encodeReply(3n, huge));
  assert.is.not(allocReplyBody(100).buffer, huge.buffer);
  assert.is(replyPoolSize(), 0);
});

test('releaseReplyPool drops pooled bodies, and later large replies still work', () => {
  recycleReply(encodeReply(1n, allocReplyBody(1 << 20)));
  assert.ok(replyPoolSize() > 0);
  releaseReplyPool();
  assert.is(replyPoolSize(), 0);
  const body = allocReplyBody(200_000);
  body.fill(7);
  const out = encodeReply(3n, body);
  assert.is(out.length, 16 + 200_000);
  assert.is(out[16 + 199_999], 7);
});

test('releaseIdleReplyPool keeps the pool while READs use it and drops it once they stopped', () => {
  releaseReplyPool();
  recycleReply(encodeReply(1, allocReplyBody(1 << 20)));
  assert.is(replyPoolSize(), 1);
  assert.is(releaseIdleReplyPool(), false); // a body was taken since the last look
  assert.is(replyPoolSize(), 1);
  assert.is(releaseIdleReplyPool(), true);
  assert.is(replyPoolSize(), 0);
});

test('after a burst, idle bodies beyond two give their pages back and are reused last', () => {
  releaseReplyPool();
  const burst = [1, 2, 3, 4, 5].map(() => allocReplyBody(1 << 20).fill(9));
  burst.forEach((b, i) => recycleReply(encodeReply(BigInt(i), b)));
  assert.is(replyPoolSize(), 5);
  assert.is(residentReplyPoolSize(), 2);
  // The resident ones are taken first; a discarded one reads as zeros and works as a body.
  const first = allocReplyBody(1 << 20);
  assert.is(first[500_000], 9);
  allocReplyBody(1 << 20);
  const third = allocReplyBody(1 << 20);
  assert.is(third[500_000], 0); // (the first page, with the header, stays)
  third.fill(5);
  assert.is(encodeReply(9n, third)[16 + 100], 5);
  releaseReplyPool();
  assert.is(residentReplyPoolSize(), 0);
});

test.run();
