// Idle connections against a real daemon process (src/daemon/main.ts): they do not keep an
// --exit-idle daemon alive, and the idle timeout never cuts a foreground `strata run`, however
// long its container runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { cliArgv, daemonArgv } from '../../src/executables.js';
import { daemonRequest } from '../../src/daemon/client.js';
import { listLeases } from '../../src/store/leases.js';
import {
  dirEntries,
  eventually,
  isAlive,
  makeEnv,
  processCounts,
  removeEnv,
  runCollect,
  type Env,
} from './harness.js';

interface Spawned {
  child: ChildProcess;
  exited: Promise<number | string>;
}

async function spawnDaemon(env: Env, exitIdleSeconds: number, extra: string[]): Promise<Spawned> {
  const [cmd, ...args] = daemonArgv(
    { storeRoot: env.storeRoot, socketPath: env.socket, logFile: env.logFile },
    exitIdleSeconds,
  );
  const child = spawn(cmd, [...args, ...extra], { stdio: 'ignore' });
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const ready = await eventually(async () => {
    try {
      return (await daemonRequest(env.socket, { op: 'ping' }, 500)).ok;
    } catch {
      return false;
    }
  }, 20_000);
  if (!ready) {
    child.kill('SIGKILL');
    throw new Error('the daemon did not start');
  }
  return { child, exited };
}

function silentConnection(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.on('error', () => undefined); // reset when the daemon goes: expected
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

test('200 idle connections do not keep an --exit-idle daemon alive', async () => {
  const env = await makeEnv(['busybox']);
  const sockets: Socket[] = [];
  let d: Spawned | undefined;
  try {
    // A long idle-connection timeout: the exit must come from the idle rule, not from closing them.
    d = await spawnDaemon(env, 1, ['--idle-connection-timeout', '600']);
    const pid = d.child.pid as number;
    for (let i = 0; i < 200; i++) sockets.push(await silentConnection(env.socket));
    assert.ok(
      await eventually(() => processCounts(pid).fds >= 200, 2000),
      `the daemon holds an fd per connection (${processCounts(pid).fds})`,
    );
    const t0 = Date.now();
    const code = await Promise.race([
      d.exited,
      new Promise((r) => setTimeout(() => r('still running'), 10_000)),
    ]);
    assert.is(code, 0, 'the daemon left by itself');
    assert.ok(Date.now() - t0 < 10_000);
    assert.ok(
      await eventually(() => sockets.every((s) => s.destroyed || s.readableEnded), 2000),
      'all closed',
    );
    assert.not.ok(existsSync(env.socket), 'its socket is removed');
  } finally {
    for (const s of sockets) s.destroy();
    if (d && isAlive(d.child.pid as number)) d.child.kill('SIGKILL');
    removeEnv(env);
  }
});

test('a foreground strata run longer than the idle timeout is not cut; a silent connection is', async () => {
  const env = await makeEnv(['busybox']);
  const runDir = join(env.dir, 'rundir');
  let d: Spawned | undefined;
  try {
    d = await spawnDaemon(env, 60, ['--idle-connection-timeout', '1']);
    const silent = await silentConnection(env.socket);
    const silentClosed = new Promise<number>((resolve) => {
      const t0 = Date.now();
      silent.once('close', () => resolve(Date.now() - t0));
    });
    const [cmd, ...rest] = cliArgv(['run', '--rm', '--runtime', 'runc', 'busybox', 'sleep 3; echo done']);
    const cliEnv = {
      ...process.env,
      STRATA_ROOT: env.storeRoot,
      STRATA_SOCKET: env.socket,
      STRATA_RUN_DIR: runDir,
    };
    const r = await runCollect(cmd, rest, { env: cliEnv });
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout, 'done\n');
    assert.ok(r.ms >= 3000, `the run lasted ${r.ms} ms`);
    const silentMs = await silentClosed;
    assert.ok(silentMs >= 900 && silentMs < 3000, `the silent connection was closed after ${silentMs} ms`);

    d.child.kill('SIGTERM');
    assert.is(await d.exited, 0, 'the daemon exits cleanly');
    assert.equal(dirEntries(join(runDir, 'containers')), [], 'no container record');
    assert.equal(await listLeases(env.storeRoot), [], 'no lease');
  } finally {
    if (d && isAlive(d.child.pid as number)) d.child.kill('SIGKILL');
    removeEnv(env);
  }
});

test.run();
