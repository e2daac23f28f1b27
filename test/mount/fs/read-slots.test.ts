import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ReadSlots } from '../../../src/mount/fs/read-slots.js';

const turn = () => new Promise((r) => setImmediate(r));

test('up to size reads start at once; more wait, in order, and each release lets one in', async () => {
  const slots = new ReadSlots(2);
  assert.is(slots.acquire(), undefined);
  assert.is(slots.acquire(), undefined);
  const started: number[] = [];
  const third = slots.acquire()!.then(() => started.push(3));
  const fourth = slots.acquire()!.then(() => started.push(4));
  assert.is(slots.queued, 2);
  slots.release();
  // Handed over on a later turn, not synchronously: the finished read's reply goes out first.
  await Promise.resolve();
  assert.equal(started, []);
  await third;
  assert.equal(started, [3]);
  slots.release();
  await fourth;
  assert.equal(started, [3, 4]);
  assert.is(slots.queued, 0);
  // Everything released: the full bound is free again.
  slots.release();
  slots.release();
  await turn();
  assert.is(slots.acquire(), undefined);
  assert.is(slots.acquire(), undefined);
  assert.ok(slots.acquire() instanceof Promise);
});

test.run();
