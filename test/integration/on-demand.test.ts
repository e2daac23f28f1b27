// A daemon started on demand by the createRuntime hook (no daemon running) is born under the
// runtime's child subreaper — crun waits for it — so it leaves once idle (--exit-idle). Plain
// `crun run` and `runc run` complete within a few seconds of the container's exit, the exit code
// propagates, and nothing is left: no daemon, no socket, no mount, no lease. Hooks that arrive as
// an idle daemon leaves reach it or start a new one, never fail.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { writeBundle } from '../../src/spec/bundle.js';
import { daemonArgv, frontExecutable, hookExecutable, ON_DEMAND_EXIT_IDLE_S } from '../../src/executables.js';
import {
  assertNoLeaks,
  bundle,
  eventually,
  hostMounts,
  isAlive,
  makeEnv,
  otherDaemonEnv,
  removeEnv,
  runCollect,
  runContainer,
  type Env,
  type Runtime,
} from './harness.js';

let env: Env;
let mountsBefore: string[];

test.before(async () => {
  env = await makeEnv(['busybox']);
  mountsBefore = hostMounts(env);
});

test.after(() => removeEnv(env));

/** Pids of every daemon that logged its start in `logFile`. */
function daemonPids(logFile: string): number[] {
  const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
  return [...log.matchAll(/strata daemon \S+ \(pid (\d+)\) serving/g)].map((m) => Number(m[1]));
}

async function assertNothingLeft(e: Env): Promise<void> {
  const pids = daemonPids(e.logFile);
  assert.ok(pids.length > 0, 'a daemon was started on demand');
  assert.ok(await eventually(() => pids.every((p) => !isAlive(p)), 5000), `daemons still running: ${pids}`);
  assert.not.ok(existsSync(e.socket), 'the socket is removed');
  await assertNoLeaks(e, mountsBefore, { served: false });
  const log = readFileSync(e.logFile, 'utf8');
  assert.match(log, `stopping (idle: no container served for ${ON_DEMAND_EXIT_IDLE_S} s`);
  assert.not.match(log, / error /);
}

for (const runtime of ['crun', 'runc'] as Runtime[]) {
  test(`${runtime} run with no daemon: starts one, completes, exit code, then the daemon leaves`, async () => {
    const e = otherDaemonEnv(env, `auto-${runtime}`);
    const dir = await bundle(e, 'busybox', {
      entrypoint: ['/bin/sh'],
      command: ['-c', 'head -1 /etc/passwd; exit 3'],
      user: '0',
    });
    const r = await runContainer(runtime, dir, `auto-${runtime}`);
    assert.is(r.code, 3, r.stderr);
    assert.is(r.stdout, 'root:x:0:0:root:/root:/bin/sh\n');
    // Daemon start (~1-2 s from sources under load) + idle exit (2 s) at most for crun.
    assert.ok(r.ms < 8000, `${runtime} run took ${r.ms} ms`);
    console.log(`    ${runtime} run with on-demand daemon: ${r.ms} ms`);
    await assertNothingLeft(e);
    assert.ok(await eventually(() => spawnSync(runtime, ['state', `auto-${runtime}`]).status !== 0));
  });
}

test('strata run with no daemon: the Node CLI starts a long-lived one; the next run takes the fast path', async () => {
  const e = otherDaemonEnv(env, 'front');
  const runEnv = {
    ...process.env,
    STRATA_ROOT: e.storeRoot,
    STRATA_SOCKET: e.socket,
    STRATA_RUN_DIR: join(e.dir, 'front-run'),
    STRATA_LOG_FILE: e.logFile,
  };
  const front = frontExecutable();
  const first = await runCollect(front, ['run', '--rm', 'busybox', 'echo first'], { env: runEnv });
  assert.equal([first.code, first.stdout, first.stderr], [0, 'first\n', '']);
  const [pid] = daemonPids(e.logFile);
  assert.ok(pid && isAlive(pid), 'a daemon was started and outlives the run');
  const second = await runCollect(front, ['run', '--rm', 'busybox', 'echo second; exit 4'], { env: runEnv });
  assert.equal([second.code, second.stdout], [4, 'second\n']);
  assert.equal(daemonPids(e.logFile), [pid], 'the second run used the same daemon');
  assert.match(readFileSync(e.logFile, 'utf8'), 'foreground run ended (code 4; exit 4');
  process.kill(pid, 'SIGTERM');
  assert.ok(await eventually(() => !isAlive(pid), 5000), 'the daemon stops on SIGTERM');
  assert.not.ok(existsSync(e.socket), 'the socket is removed');
  await assertNoLeaks(e, mountsBefore, { served: false });
});

test('back to back: the second container arrives as the first daemon is about to leave', async () => {
  const e = otherDaemonEnv(env, 'b2b');
  const dir = await bundle(e, 'busybox', { entrypoint: ['/bin/sh'], command: ['-c', 'echo ok'] });
  const first = await runContainer('runc', dir, 'b2b-1');
  assert.is(first.code, 0, first.stderr);
  // The daemon leaves ~2 s after the first container's root was released (sampled every 200 ms).
  await new Promise((r) => setTimeout(r, ON_DEMAND_EXIT_IDLE_S * 1000 - 150));
  const second = await runContainer('runc', dir, 'b2b-2');
  assert.is(second.code, 0, second.stderr);
  assert.is(second.stdout, 'ok\n');
  await assertNothingLeft(e);
});

/** The hook executable, asynchronously (the state's pid is a live process of ours). */
function hook(stage: string, state: string, argv: string[], socket: string) {
  return runCollect(hookExecutable(), [stage, ...argv], { env: { STRATA_SOCKET: socket }, input: state });
}

test('hooks sweeping across the idle exit (0.3 s) always reach a daemon; one serves at a time', async () => {
  const e = otherDaemonEnv(env, 'sweep');
  const dir = join(e.dir, 'sweep-bundle');
  await writeBundle({
    storeRoot: e.storeRoot,
    image: 'busybox',
    dir,
    run: { readOnly: true },
    socketPath: e.socket,
    hookPath: hookExecutable(),
  });
  const argv = daemonArgv({ storeRoot: e.storeRoot, socketPath: e.socket, logFile: e.logFile }, 0.3);
  const holder = spawn('sleep', ['600'], { stdio: 'ignore' });
  try {
    // Delays between one container's poststop and the next createRuntime, around the 0.3 s idle
    // time plus the 0-30 ms sampling jitter: some reach the old daemon, some race its exit.
    for (let delay = 240, i = 0; delay <= 380; delay += 10, i++) {
      const state = JSON.stringify({
        ociVersion: '1.0.2',
        id: `sweep-${i}`,
        status: 'creating',
        pid: holder.pid,
        bundle: dir,
      });
      const cr = await hook('createRuntime', state, argv, e.socket);
      assert.is(cr.code, 0, `createRuntime after ${delay} ms: ${cr.stderr}`);
      const ps = await hook('poststop', state, [], e.socket);
      assert.is(ps.code, 0, `poststop: ${ps.stderr}`);
      await new Promise((r) => setTimeout(r, delay));
    }
  } finally {
    holder.kill('SIGKILL');
  }
  const log = readFileSync(e.logFile, 'utf8');
  assert.not.match(log, 'another strata daemon holds');
  const pids = daemonPids(e.logFile);
  console.log(`    15 hook pairs across the idle boundary: ${pids.length} daemons started`);
  assert.ok(await eventually(() => pids.every((p) => !isAlive(p)), 5000), 'every daemon left');
  assert.not.ok(existsSync(e.socket));
  await assertNoLeaks(e, mountsBefore, { served: false });
});

test.run();
