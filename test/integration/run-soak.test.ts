// 50 consecutive `strata run --rm` (the native front end as users call it, one process per run,
// against a daemon on a temp socket; crun and runc in turn) leak nothing: the daemon's fds and threads, host mounts, leases, run-dir entries and
// processes all stay where they were, and every run's output and exit code come through.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { frontExecutable } from '../../src/executables.js';
import {
  assertDaemonNotGrown,
  assertNoLeaks,
  hostMounts,
  processCounts,
  runCollect,
  servesNothing,
  withDaemonEnv,
  type Env,
} from './harness.js';

const RUNS = 50;

/** `strata run --rm` of the busybox image; its stdout and stderr together in `out`. */
async function strataRun(
  env: Env,
  runDir: string,
  script: string,
  runtime: 'crun' | 'runc',
): Promise<{ code: number; out: string; ms: number }> {
  const cmd = frontExecutable();
  const args = [
    'run',
    '--root',
    env.storeRoot,
    '--rm',
    '--socket',
    env.socket,
    '--run-dir',
    runDir,
    '--runtime',
    runtime,
    'busybox',
    script, // the test image's entrypoint is ["/bin/sh", "-c"]
  ];
  const r = await runCollect(cmd, args);
  return { code: r.code, out: r.stdout + r.stderr, ms: r.ms };
}

/** Every path under dir, relative. */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

/** Processes other than `except` whose command line or cwd mentions dir (runc, hooks, shells). */
function processesUsing(dir: string, except: number[]): string[] {
  const found: string[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    if (except.includes(Number(p))) continue;
    try {
      const cmdline = readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ');
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${p}/cwd`);
      } catch {
        // a kernel thread or a process already gone
      }
      if (cmdline.includes(dir) || cwd.startsWith(dir)) found.push(`${p}: ${cmdline}`);
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/** Direct children of pid (all its threads). */
function childrenOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((t) =>
    readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number),
  );
}

test(`${RUNS} consecutive strata run --rm leak nothing`, async () => {
  await withDaemonEnv(['busybox'], async ({ env, daemon }) => {
    const runDir = join(env.dir, 'run-dir');
    // Warm up: the daemon's object fd cache, libuv's pool and the run dir's layout start on first use.
    for (let i = 0; i < 3; i++) {
      const r = await strataRun(env, runDir, 'true', i % 2 ? 'runc' : 'crun');
      assert.is(r.code, 0, r.out);
    }
    assert.ok(await servesNothing(env));
    const before = processCounts(daemon.pid);
    const mounts = hostMounts(env);
    const entries = tree(runDir);
    const children = childrenOf(process.pid).sort(); // the daemon and tsx's esbuild service
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await strataRun(env, runDir, `echo run-${i}; exit ${i % 4}`, i % 2 ? 'runc' : 'crun');
      assert.is(r.code, i % 4, `run ${i}: ${r.out}`);
      assert.is(r.out, `run-${i}\n`);
      times.push(r.ms);
    }
    await assertNoLeaks(env, mounts);
    assert.equal(tree(runDir), entries, `run-dir entries (${relative(env.dir, runDir)})`);
    await assertDaemonNotGrown(daemon, before);
    // Its one child is the holder of the cgroup2 namespace crun runs in (src/run/cgroup-ns.ts).
    const daemonKids = childrenOf(daemon.pid).map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
    assert.equal(daemonKids.length, 1, `the daemon's children: ${daemonKids.join(' | ')}`);
    assert.match(daemonKids[0], 'mount -t cgroup2 none /sys/fs/cgroup');
    assert.equal(childrenOf(process.pid).sort(), children, 'no new child of ours');
    assert.ok(children.includes(daemon.pid));
    // The daemon's fd holder lives as long as the daemon (it exits once that is gone and it holds
    // nothing: test/native/fdholder.test.ts, outlive.test.ts).
    assert.equal(
      processesUsing(env.dir, [daemon.pid, process.pid]).filter(
        (p) => !p.includes('strata-fdholder --socket'),
      ),
      [],
      'no stray process',
    );
    times.sort((a, b) => a - b);
    console.log(
      `    strata run --rm (native front end): median ${times[RUNS >> 1]} ms (min ${times[0]}, max ${times[RUNS - 1]}); ` +
        `daemon fds ${before.fds}, threads ${before.threads}`,
    );
  });
});

test.run();
