// 50 consecutive runs through one daemon leak nothing: daemon fds and threads, host mounts,
// leases, served containers, runtime state and temp files all stay where they were.
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import {
  assertDaemonNotGrown,
  assertNoLeaks,
  bundle,
  hostMounts,
  processCounts,
  runContainer,
  servesNothing,
  withDaemonEnv,
} from './harness.js';

const RUNS = 50;

test(`${RUNS} consecutive runc runs (read-only and writable) leak nothing`, async () => {
  // Other test files may make and remove their own strata-it-* dirs meanwhile: only a dir that
  // appeared during this test and is still there counts.
  const ours = () => readdirSync(tmpdir()).filter((n) => n.startsWith('strata-it-'));
  const tmpBefore = new Set(ours());
  await withDaemonEnv(['busybox'], async ({ env, daemon }) => {
    const ro = await bundle(env, 'busybox', {
      entrypoint: ['/bin/sh'],
      command: ['-c', 'cat /etc/group >/dev/null'],
      readOnly: true,
    });
    const rw = await bundle(env, 'busybox', {
      entrypoint: ['/bin/sh'],
      command: ['-c', 'echo x > /y'],
      readOnly: false,
      user: '0',
    });
    // Warm up: the overlay worker, libuv's pool and the object fd cache start on first use.
    for (let i = 0; i < 3; i++) {
      const a = await runContainer('runc', ro, `warm-ro-${i}`);
      assert.is(a.code, 0, a.stderr);
      const b = await runContainer('runc', rw, `warm-rw-${i}`);
      assert.is(b.code, 0, b.stderr);
    }
    assert.ok(await servesNothing(env));
    const before = processCounts(daemon.pid);
    const mounts = hostMounts(env);
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await runContainer('runc', i % 2 ? rw : ro, `soak-${i}`);
      assert.is(r.code, 0, `run ${i}: ${r.stderr}`);
      times.push(r.ms);
    }
    await assertNoLeaks(env, mounts);
    await assertDaemonNotGrown(daemon, before);
    times.sort((a, b) => a - b);
    console.log(`    runc run median ${times[RUNS >> 1]} ms (min ${times[0]}, max ${times[RUNS - 1]})`);
  });
  assert.equal(
    ours().filter((n) => !tmpBefore.has(n)),
    [],
    'no temp dir left',
  );
});

test.run();
