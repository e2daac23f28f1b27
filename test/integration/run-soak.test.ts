// 50 consecutive `strata run --rm` (the real CLI, one process per run, against a daemon on a temp
// socket) leak nothing: the daemon's fds and threads, host mounts, leases, run-dir entries and
// processes all stay where they were, and every run's output and exit code come through.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { cliArgv } from '../../hooks/paths.js';
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
): Promise<{ code: number; out: string; ms: number }> {
  const [cmd, ...args] = cliArgv([
    '--root',
    env.storeRoot,
    'run',
    '--rm',
    '--socket',
    env.socket,
    '--run-dir',
    runDir,
    '--runtime',
    'runc',
    'busybox',
    script, // the test image's entrypoint is ["/bin/sh", "-c"]
  ]);
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
      const r = await strataRun(env, runDir, 'true');
      assert.is(r.code, 0, r.out);
    }
    assert.ok(await servesNothing(env));
    const before = processCounts(daemon.pid);
    const mounts = hostMounts(env);
    const entries = tree(runDir);
    const children = childrenOf(process.pid).sort(); // the daemon and tsx's esbuild service
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await strataRun(env, runDir, `echo run-${i}; exit ${i % 4}`);
      assert.is(r.code, i % 4, `run ${i}: ${r.out}`);
      assert.is(r.out, `run-${i}\n`);
      times.push(r.ms);
    }
    await assertNoLeaks(env, mounts);
    assert.equal(tree(runDir), entries, `run-dir entries (${relative(env.dir, runDir)})`);
    await assertDaemonNotGrown(daemon, before);
    assert.equal(childrenOf(daemon.pid), [], 'the daemon has no child process');
    assert.equal(childrenOf(process.pid).sort(), children, 'no new child of ours');
    assert.ok(children.includes(daemon.pid));
    assert.equal(processesUsing(env.dir, [daemon.pid, process.pid]), [], 'no stray process');
    times.sort((a, b) => a - b);
    console.log(
      `    strata run --rm (CLI from sources): median ${times[RUNS >> 1]} ms (min ${times[0]}, max ${times[RUNS - 1]}); ` +
        `daemon fds ${before.fds}, threads ${before.threads}`,
    );
  });
});

test.run();
