// 50 consecutive runs through one daemon leak nothing: daemon fds and threads, host mounts,
// leases, served containers, runtime state and temp files all stay where they were.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
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
  // Only this test's own dir counts: other test files (and, on a shared machine, other people's
  // runs) make and remove strata-it-* dirs at any time.
  let envDir = '';
  await withDaemonEnv(['busybox'], async ({ env, daemon }) => {
    envDir = env.dir;
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
  assert.ok(envDir.startsWith(join(tmpdir(), 'strata-it-')), envDir);
  assert.not.ok(existsSync(envDir), 'no temp dir left');
});

test.run();
