// Failure paths of the bundle-based run, with real runc: each ends with a clear error and leaves
// nothing behind — no container, no host mount, no served root, no lease.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { hookExecutable } from '../../src/executables.js';
import { daemonRequest } from '../../src/daemon/client.js';
import {
  assertNoLeaks,
  bundle,
  closeDaemonEnv,
  eventually,
  hostMounts,
  isAlive,
  leaseIds,
  openDaemonEnv,
  otherDaemonEnv,
  runContainer,
  served,
  servesNothing,
  type DaemonEnv,
  type Env,
} from './harness.js';

let d: DaemonEnv;
let env: Env;

test.before(async () => {
  d = await openDaemonEnv(['busybox']);
  env = d.env;
});

test.after(() => closeDaemonEnv(d));

async function assertNothingLeft(e: Env, id: string): Promise<void> {
  await assertNoLeaks(e, d.mountsBefore);
  const state = spawnSync('runc', ['state', id], { encoding: 'utf8' });
  assert.is.not(state.status, 0, `runc still knows ${id}: ${state.stdout}`);
}

function setAnnotation(dir: string, value: string | undefined): void {
  const path = join(dir, 'config.json');
  const config = JSON.parse(readFileSync(path, 'utf8')) as { annotations: Record<string, string> };
  if (value === undefined) delete config.annotations['org.strata.image'];
  else config.annotations['org.strata.image'] = value;
  writeFileSync(path, JSON.stringify(config));
}

const sh = (script: string) => ({ entrypoint: ['/bin/sh'], command: ['-c', script], user: '0' });

test('an image missing from the store fails createRuntime, naming it and `strata image import`', async () => {
  const dir = await bundle(env, 'busybox', sh('true'));
  const missing = `sha256:${'0'.repeat(64)}`;
  setAnnotation(dir, missing);
  const r = await runContainer('runc', dir, 'missing-image');
  assert.is.not(r.code, 0);
  assert.match(r.stderr, `image ${missing}`);
  assert.match(r.stderr, 'strata image import');
  await assertNothingLeft(env, 'missing-image');
});

test('a bad or missing org.strata.image annotation is a clear error', async () => {
  const dir = await bundle(env, 'busybox', sh('true'));
  setAnnotation(dir, 'Not A Ref!!');
  let r = await runContainer('runc', dir, 'bad-annotation');
  assert.is.not(r.code, 0);
  assert.match(r.stderr, 'is not an image reference or digest');
  await assertNothingLeft(env, 'bad-annotation');

  setAnnotation(dir, undefined);
  r = await runContainer('runc', dir, 'no-annotation');
  assert.is.not(r.code, 0);
  assert.match(r.stderr, 'has no org.strata.image annotation');
  await assertNothingLeft(env, 'no-annotation');
});

test('mount points the image lacks (dirs, a file bind) get placeholders', async () => {
  const hostDir = join(env.dir, 'shared');
  mkdirSync(hostDir);
  writeFileSync(join(hostDir, 'f'), 'from the host\n');
  const dir = await bundle(env, 'busybox', {
    ...sh('cat /opt/deep/data/f /opt/file.txt; test -d /scratch/new && echo tmpfs-ok'),
    readOnly: true,
    mounts: [
      { type: 'bind', source: hostDir, destination: '/opt/deep/data', options: ['rbind', 'ro'] },
      { type: 'bind', source: join(hostDir, 'f'), destination: '/opt/file.txt', options: ['bind', 'ro'] },
      { type: 'tmpfs', source: 'tmpfs', destination: '/scratch/new', options: ['rw'] },
    ],
  });
  const r = await runContainer('runc', dir, 'placeholders');
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'from the host\nfrom the host\ntmpfs-ok\n');
  await assertNothingLeft(env, 'placeholders');
});

test('no daemon and none startable: clear errors, nothing left', async () => {
  const other = otherDaemonEnv(env, 'none');
  const dir = await bundle(other, 'busybox', sh('true'), { autostart: false });
  let r = await runContainer('runc', dir, 'no-daemon');
  assert.is.not(r.code, 0);
  assert.match(r.stderr, `cannot reach the strata daemon at ${other.socket}`);
  assert.equal(hostMounts(env), d.mountsBefore);

  // A daemon argv whose program does not exist.
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  config.hooks.createRuntime[0].args.push('/nonexistent/strata', 'daemon');
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  r = await runContainer('runc', dir, 'no-daemon-2');
  assert.match(r.stderr, 'starting the daemon /nonexistent/strata: No such file or directory');

  // A daemon that starts but cannot open its store reports why over sd_notify, at once.
  const blocker = join(env.dir, 'not-a-dir');
  writeFileSync(blocker, '');
  const args: string[] = config.hooks.createRuntime[0].args.slice(0, 2);
  args.push(
    ...(await import('../../src/executables.js')).daemonArgv({
      storeRoot: join(blocker, 'store'),
      socketPath: other.socket,
      logFile: other.logFile,
    }),
  );
  config.hooks.createRuntime[0].args = args;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  r = await runContainer('runc', dir, 'no-daemon-3');
  assert.is.not(r.code, 0);
  assert.match(r.stderr, 'failed to start: strata daemon failed');
  assert.match(r.stderr, other.logFile);
  assert.ok(r.ms < 8000, `failed in ${r.ms} ms, not after the ready timeout`);
  assert.equal(hostMounts(env), d.mountsBefore);
});

test('the createRuntime hook starts a daemon when none runs; it serves and stops cleanly', async () => {
  const other = otherDaemonEnv(env, 'auto');
  const dir = await bundle(other, 'busybox', sh('echo auto'));
  const r = await runContainer('runc', dir, 'autostart');
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'auto\n');
  const status = await daemonRequest(other.socket, { op: 'status' });
  assert.ok(status.ok && status.status);
  assert.is(status.status.logFile, other.logFile);
  await assertNothingLeft(other, 'autostart');
  // Started on demand, it leaves by itself once idle (on-demand.test.ts); stop it sooner here.
  try {
    process.kill(status.status.pid, 'SIGTERM');
  } catch {
    // already gone: its idle exit came first
  }
  assert.ok(
    await eventually(() => !isAlive(status.status?.pid as number)),
    'the started daemon exits on SIGTERM (or idle)',
  );
  assert.match(readFileSync(other.logFile, 'utf8'), 'info stopped');
});

test('a runtime that dies between createRuntime and createContainer leaks nothing', async () => {
  const dir = await bundle(env, 'busybox', sh('true'));
  const victim = spawn('sleep', ['60'], { stdio: 'ignore' });
  const state = JSON.stringify({
    ociVersion: '1.0.2',
    id: 'orphan',
    status: 'creating',
    pid: victim.pid,
    bundle: dir,
  });
  const hook = spawnSync(hookExecutable(), ['createRuntime'], {
    input: state,
    env: { STRATA_SOCKET: env.socket },
    encoding: 'utf8',
  });
  assert.is(hook.status, 0, hook.stderr);
  assert.equal(
    (await served(env)).map((c) => [c.id, c.state]),
    [['orphan', 'prepared']],
  );
  assert.equal(await leaseIds(env), ['orphan']);
  victim.kill('SIGKILL');
  assert.ok(await servesNothing(env), 'released once the runtime died');
  // The root leaves the list when its release starts (daemon/container-root.ts); the lease goes
  // when the release ends.
  assert.ok(await eventually(async () => (await leaseIds(env)).length === 0), 'the lease went too');
  // The release logs once it has ended, which can be after the lease file went.
  await eventually(() => readFileSync(env.logFile, 'utf8').includes('container orphan: released (its init'));
  assert.match(readFileSync(env.logFile, 'utf8'), 'container orphan: released (its init');
  // poststop afterwards (or for an id never seen) is fine: idempotent.
  const post = spawnSync(hookExecutable(), ['poststop'], {
    input: state,
    env: { STRATA_SOCKET: env.socket },
  });
  assert.is(post.status, 0);
});

test('createContainer without createRuntime is refused with a clear error', () => {
  const state = JSON.stringify({
    ociVersion: '1.0.2',
    id: 'never',
    status: 'creating',
    pid: 1,
    bundle: env.dir,
  });
  const hook = spawnSync(hookExecutable(), ['createContainer'], {
    input: state,
    env: { STRATA_SOCKET: env.socket },
    encoding: 'utf8',
  });
  assert.is(hook.status, 1);
  assert.match(hook.stderr, 'strata-hook createContainer: no root prepared for container never');
});

test.run();
