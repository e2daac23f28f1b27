// Connections that say nothing must not stay open: a refused peer is closed at once, an idle one
// after the idle timeout; one the daemon is working for (a hook waiting for its root) is never cut.
import { spawn } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { writeBundle } from '../../src/spec/bundle.js';
import { hookExecutable } from '../../src/executables.js';
import { ContainerManager } from '../../src/daemon/containers.js';
import { openLog } from '../../src/daemon/log.js';
import { listenDaemon, REFUSED_WAIT_MS, type DaemonServer } from '../../src/daemon/server.js';
import { eventually, makeEnv, removeEnv, testDaemonStatus, type Env } from '../integration/harness.js';
import { fdSnapshot, fdsLeftSince } from '../native/mini-fuse.js';

const IDLE_MS = 400;

/** A manager whose createRuntime answers only after twice the idle timeout. */
class SlowManager extends ContainerManager {
  override async createRuntime(stateJson: string): Promise<void> {
    await new Promise((r) => setTimeout(r, 2 * IDLE_MS));
    return super.createRuntime(stateJson);
  }
}

let env: Env;
let manager: ContainerManager;
let server: DaemonServer;

test.before(async () => {
  env = await makeEnv(['busybox']);
  const logger = openLog(env.logFile, false);
  manager = new SlowManager({ storeRoot: env.storeRoot, logger });
  const status = testDaemonStatus(env, manager);
  server = await listenDaemon({
    socketPath: env.socket,
    storeRoot: env.storeRoot,
    manager,
    logger,
    status,
    idleConnectionMs: IDLE_MS,
  });
});

test.after(async () => {
  await server.close();
  await manager.releaseAll('test done');
  removeEnv(env);
});

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(env.socket);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function closed(s: Socket): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    if (s.destroyed) resolve(0);
    s.once('close', () => resolve(performance.now() - t0));
  });
}

test('a refused peer (another uid) that sends nothing is closed at once', async () => {
  const opened = [env.dir, join(env.dir, 'run')];
  for (const d of opened) chmodSync(d, 0o755);
  chmodSync(env.socket, 0o666);
  try {
    // Connects as nobody, says nothing, and reports how long the daemon kept the connection.
    const script = `const t=Date.now();const s=require('net').connect(process.argv[1]);
      s.on('data',()=>{});s.on('close',()=>{console.log(Date.now()-t);process.exit(0)});
      setTimeout(()=>{console.log('open');process.exit(1)},10000)`;
    const out = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, ['-e', script, env.socket], {
        uid: 65534,
        gid: 65534,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.on('close', () => resolve(text.trim()));
    });
    const ms = Number(out);
    assert.ok(Number.isFinite(ms), `the refused connection stayed open: ${out}`);
    assert.ok(ms < REFUSED_WAIT_MS + 1000, `closed after ${ms} ms`);
    assert.ok(ms < IDLE_MS * 5, 'long before an idle connection would be');
  } finally {
    chmodSync(env.socket, 0o600);
    for (const d of opened) chmodSync(d, 0o700);
  }
});

test('idle connections are closed after the timeout: silent, half a request, an API client between requests', async () => {
  const fdsBefore = fdSnapshot();
  const silent = await Promise.all(Array.from({ length: 50 }, () => open()));
  const partial = await open();
  partial.write('STRATA-HOOK 1 createRun');
  const api = await open();
  const answered = new Promise<string>((resolve) => api.once('data', (d: Buffer) => resolve(d.toString())));
  api.write('{"op":"ping"}\n');
  assert.match(await answered, '"ok":true');
  await eventually(() => server.connections === 52, 1000);
  assert.is(server.connections, 52);
  assert.is(server.busy, 0, 'idle connections are not busy');
  const t0 = performance.now();
  const times = await Promise.all([...silent, partial, api].map(closed));
  const slowest = performance.now() - t0;
  assert.ok(Math.min(...times) >= IDLE_MS * 0.5, `none closed early (${Math.min(...times)} ms)`);
  assert.ok(slowest < IDLE_MS + 2000, `all closed within the timeout (${slowest} ms)`);
  assert.ok(await eventually(() => server.connections === 0, 1000));
  assert.ok(
    await eventually(() => fdsLeftSince(fdsBefore).length === 0, 2000),
    `fds left: ${fdsLeftSince(fdsBefore).join(', ')}`,
  );
});

test('a hook waiting longer than the idle timeout for its answer is not cut', async () => {
  const bundleDir = join(env.dir, 'bundle-slow');
  await writeBundle({
    storeRoot: env.storeRoot,
    image: 'busybox',
    dir: bundleDir,
    run: { readOnly: true },
    socketPath: env.socket,
    hookPath: hookExecutable(),
  });
  const state = JSON.stringify({ ociVersion: '1.0.2', id: 'slow', status: 'creating', bundle: bundleDir });
  const t0 = performance.now();
  const r = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
    const child = spawn(hookExecutable(), ['createRuntime'], {
      env: { STRATA_SOCKET: env.socket },
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => resolve({ status, stderr }));
    child.stdin.end(state);
  });
  assert.is(r.status, 0, r.stderr);
  assert.ok(performance.now() - t0 >= 2 * IDLE_MS, 'the answer took longer than the idle timeout');
  assert.is(manager.size, 1);
  assert.ok(await manager.release('slow', 'test done'));
});

test.run();
