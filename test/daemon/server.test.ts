// The daemon in-process: its socket, the JSON API, the SO_PEERCRED check, and releases that do
// not need a runtime (timeout, API release, a second createRuntime), driven through the real
// hook executable.
import { spawn } from 'node:child_process';
import { chmodSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { hookExecutable } from '../../src/executables.js';
import { writeBundle } from '../../src/spec/bundle.js';
import { daemonRequest } from '../../src/daemon/client.js';
import { ContainerManager } from '../../src/daemon/containers.js';
import { openLog } from '../../src/daemon/log.js';
import { listenDaemon, type DaemonServer } from '../../src/daemon/server.js';
import { listLeases } from '../../src/store/leases.js';
import { eventually, makeEnv, removeEnv, testDaemonStatus, type Env } from '../integration/harness.js';

let env: Env;
let manager: ContainerManager;
let server: DaemonServer;
let bundleDir: string;
let threadsBefore: number;

test.before(async () => {
  env = await makeEnv(['busybox']);
  threadsBefore = readdirSync('/proc/self/task').length;
  const logger = openLog(env.logFile, false);
  manager = new ContainerManager({ storeRoot: env.storeRoot, logger, prepareTimeoutMs: 300 });
  const status = testDaemonStatus(env, manager);
  server = await listenDaemon({ socketPath: env.socket, storeRoot: env.storeRoot, manager, logger, status });
  bundleDir = join(env.dir, 'bundle');
  await writeBundle({
    storeRoot: env.storeRoot,
    image: 'busybox',
    dir: bundleDir,
    run: { readOnly: true },
    socketPath: env.socket,
    hookPath: hookExecutable(),
  });
});

test.after(async () => {
  await server.close();
  await manager.releaseAll('test done');
  removeEnv(env);
});

/** The real hook executable, asynchronously: the daemon answering it runs on this thread. */
function run(
  cmd: string,
  args: string[],
  input: string,
  opts: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number } = {},
) {
  return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(input);
  });
}

function hook(stage: string, id: string, extra: Record<string, unknown> = {}) {
  const state = JSON.stringify({ ociVersion: '1.0.2', id, status: 'creating', bundle: bundleDir, ...extra });
  return run(hookExecutable(), [stage], state, { env: { STRATA_SOCKET: env.socket } });
}

test('the socket is 0600 in a 0700 directory the daemon created', () => {
  assert.is(statSync(env.socket).mode & 0o777, 0o600);
  assert.is(statSync(join(env.dir, 'run')).mode & 0o777, 0o700);
});

test('JSON API: ping, status, list, release of an unknown id, and a bad request', async () => {
  assert.equal(await daemonRequest(env.socket, { op: 'ping' }), { ok: true });
  const status = await daemonRequest(env.socket, { op: 'status' });
  assert.is(status.status?.store, env.storeRoot);
  assert.equal(await daemonRequest(env.socket, { op: 'list' }), { ok: true, containers: [] });
  assert.equal(await daemonRequest(env.socket, { op: 'release', id: 'nope' }), { ok: true, released: false });
  const bad = await daemonRequest(env.socket, { op: 'release' });
  assert.is(bad.ok, false);
  assert.is(bad.error?.kind, 'InvalidArgument');
  assert.match(bad.error?.message ?? '', 'daemon API request is invalid');
});

test('a client that is not root is refused (SO_PEERCRED), in either protocol', async () => {
  // Even if the file modes let it in.
  const opened = [env.dir, join(env.dir, 'run')];
  for (const d of opened) chmodSync(d, 0o755);
  chmodSync(env.socket, 0o666);
  try {
    const script = `const s=require('net').connect(process.argv[1]);s.end(process.argv[2]);s.pipe(process.stdout)`;
    const client = async (input: string) =>
      (await run(process.execPath, ['-e', script, env.socket, input], '', { uid: 65534, gid: 65534 })).stdout;
    const api = JSON.parse(await client('{"op":"list"}\n'));
    assert.is(api.ok, false);
    assert.match(
      api.error.message,
      'permission denied: only root may use the strata daemon (this client has uid 65534',
    );
    assert.match(await client('STRATA-HOOK 1 poststop\n{}'), /^error permission denied: only root/);
  } finally {
    chmodSync(env.socket, 0o600);
    for (const d of opened) chmodSync(d, 0o700);
  }
});

test('a prepared root that never gets createContainer is released after the timeout', async () => {
  const r = await hook('createRuntime', 'late');
  assert.is(r.status, 0, r.stderr);
  assert.equal(
    (await listLeases(env.storeRoot)).map((l) => l.id),
    ['late'],
  );
  const again = await hook('createRuntime', 'late');
  assert.is(again.status, 1);
  assert.match(again.stderr, 'container late already has a root served by this daemon');
  assert.ok(await eventually(() => manager.size === 0, 3000), 'released');
  assert.equal(await listLeases(env.storeRoot), []);
  assert.match(
    readFileSync(env.logFile, 'utf8'),
    'container late: released (createContainer did not come within 300 ms',
  );
  assert.is((await hook('poststop', 'late')).status, 0, 'poststop after release is fine');
});

test('release through the API closes the mount; the session ends and the lease goes', async () => {
  assert.is((await hook('createRuntime', 'rel', { pid: process.pid })).status, 0);
  const listed = await daemonRequest(env.socket, { op: 'list' });
  assert.equal(
    listed.containers?.map((c) => [c.id, c.state, c.readonly]),
    [['rel', 'prepared', true]],
  );
  assert.equal(await daemonRequest(env.socket, { op: 'release', id: 'rel' }), { ok: true, released: true });
  assert.is(manager.size, 0);
  assert.equal(await listLeases(env.storeRoot), []);
  assert.match(
    readFileSync(env.logFile, 'utf8'),
    'container rel: released (released through the API; session unmounted',
  );
  assert.ok(
    await eventually(() => readdirSync('/proc/self/task').length <= threadsBefore + 4),
    'reader threads gone',
  );
});

test.run();
