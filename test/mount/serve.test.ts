import v8 from 'node:v8';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { limitServerHeap, mountSource } from '../../src/mount/serve.js';

const youngGenBytes = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size;

test('limitServerHeap keeps the young generation from growing under a server-like workload', () => {
  // Each test file runs in its own process, so the flags set here stay in this one.
  limitServerHeap();
  const before = youngGenBytes();
  // Many small objects that survive a few scavenges, as in-flight requests do: without the
  // limit V8 grows the young generation to 32 MiB here (measured: 1 -> 32 MiB).
  const inFlight: { i: number; name: string }[] = new Array(100_000);
  for (let i = 0; i < 3_000_000; i++) inFlight[i % inFlight.length] = { i, name: `n${i}` };
  const after = youngGenBytes();
  assert.ok(after <= Math.max(2 * before, 4 << 20), `young generation grew from ${before} to ${after} bytes`);
});

test('mountSource names the image by its manifest digest', () => {
  assert.is(mountSource({ manifestDigest: `sha256:${'ab'.repeat(32)}` }), 'strata:abababababab');
});

test.run();
