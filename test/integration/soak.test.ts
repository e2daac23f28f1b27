// 50 consecutive runs through one daemon leak nothing: daemon fds and threads, host mounts,
// leases, served containers, runtime state and temp files all stay where they were.
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import {
  bundle,
  eventually,
  hostMounts,
  leaseIds,
  makeEnv,
  processCounts,
  removeEnv,
  runContainer,
  served,
  startDaemon,
} from './harness.js';

const RUNS = 50;

test(`${RUNS} consecutive runc runs (read-only and writable) leak nothing`, async () => {
  const ours = () => readdirSync(tmpdir()).filter((n) => n.startsWith('strata-it-')).length;
  const tmpBefore = ours();
  const env = await makeEnv(['busybox']);
  const daemon = await startDaemon(env);
  try {
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
    assert.ok(await eventually(async () => (await served(env)).length === 0));
    const before = processCounts(daemon.pid);
    const mounts = hostMounts(env);
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await runContainer('runc', i % 2 ? rw : ro, `soak-${i}`);
      assert.is(r.code, 0, `run ${i}: ${r.stderr}`);
      times.push(r.ms);
    }
    assert.ok(await eventually(async () => (await served(env)).length === 0), 'nothing served');
    assert.equal(await leaseIds(env), [], 'no lease');
    assert.equal(hostMounts(env), mounts, 'no host mount');
    assert.ok(
      await eventually(() => {
        const now = processCounts(daemon.pid);
        return now.fds <= before.fds && now.threads <= before.threads;
      }),
      `daemon fds/threads grew: ${JSON.stringify(before)} -> ${JSON.stringify(processCounts(daemon.pid))}`,
    );
    times.sort((a, b) => a - b);
    console.log(`    runc run median ${times[RUNS >> 1]} ms (min ${times[0]}, max ${times[RUNS - 1]})`);
  } finally {
    assert.is(await daemon.stop(), 0, 'the daemon exits cleanly');
    removeEnv(env);
  }
  assert.is(ours(), tmpBefore, 'no temp dir left');
});

test.run();
