// Shared by the bundle-based integration tests: a temp store with real images, a strata daemon
// as a child process on a temp socket, bundles written by `writeBundle`, and real runc / crun.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';

import { writeBundle } from '../../src/spec/bundle.js';
import { cliArgv, daemonArgv, hookExecutable } from '../../src/executables.js';
import { daemonRequest } from '../../src/daemon/client.js';
import type { RunOptions } from '../../src/spec/options.js';
import type { DaemonStatus, ServedContainer } from '../../src/schema/generated/daemon-api.js';
import type { ContainerManager } from '../../src/daemon/containers.js';
import { importImage } from '../../src/store/import.js';
import { listLeases } from '../../src/store/leases.js';
import { openStore } from '../../src/store/store.js';
import { busyboxImage, debianImage } from '../fixtures/images.js';

export type Runtime = 'runc' | 'crun';

export interface Env {
  dir: string;
  storeRoot: string;
  socket: string;
  logFile: string;
}

/** A temp dir with a store holding the named test images (busybox always, debian on request). */
export async function makeEnv(images: ('busybox' | 'debian')[] = ['busybox']): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-it-'));
  let store;
  try {
    store = await openStore(join(dir, 'store'));
    for (const name of images) {
      const img = name === 'busybox' ? await busyboxImage() : await debianImage();
      await importImage(store, `oci:${img.ociLayout}:${img.tag}`, { name });
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    storeRoot: store.root,
    socket: join(dir, 'run', 'strata.sock'),
    logFile: join(dir, 'daemon.log'),
  };
}

export interface Daemon {
  pid: number;
  child: ChildProcess;
  /** SIGTERM, then the exit code (or the signal that killed it). */
  stop(): Promise<number | string>;
}

/** The command line of `strata daemon` on the env's store, socket and log file. */
export function daemonCliArgv(env: Env, ...extra: string[]): string[] {
  return cliArgv([
    '--root',
    env.storeRoot,
    'daemon',
    '--socket',
    env.socket,
    '--log-file',
    env.logFile,
    ...extra,
  ]);
}

/** `strata daemon` as a child process; resolves once its socket answers. */
export async function startDaemon(env: Env): Promise<Daemon> {
  const [cmd, ...args] = daemonCliArgv(env);
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const until = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await daemonRequest(env.socket, { op: 'ping' }, 1000)).ok) break;
    } catch {
      if (child.exitCode !== null || Date.now() > until)
        throw new Error(`the daemon did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    pid: child.pid as number,
    child,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

export async function served(env: Env): Promise<ServedContainer[]> {
  const res = await daemonRequest(env.socket, { op: 'list' });
  if (!res.ok) throw new Error(res.error?.message);
  return res.containers ?? [];
}

export async function leaseIds(env: Env): Promise<string[]> {
  return (await listLeases(env.storeRoot)).map((l) => l.id);
}

let bundleCount = 0;

/** A bundle for `image` in env.dir; the hooks may start the daemon (with its log in env.logFile). */
export async function bundle(
  env: Env,
  image: string,
  run: RunOptions,
  opts: { autostart?: boolean } = {},
): Promise<string> {
  const dir = join(env.dir, `bundle-${++bundleCount}`);
  await writeBundle({
    storeRoot: env.storeRoot,
    image,
    dir,
    run,
    socketPath: env.socket,
    hookPath: hookExecutable(),
    daemonArgv:
      opts.autostart === false
        ? undefined
        : daemonArgv({ storeRoot: env.storeRoot, socketPath: env.socket, logFile: env.logFile }),
  });
  return dir;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** `runc run ID` in the bundle, or crun in a private mount namespace with a pure cgroup2 mount
 * (crun 1.8 refuses this host's hybrid layout: docs/architecture.md#host-facts). */
export function runContainer(runtime: Runtime, bundleDir: string, id: string): Promise<RunResult> {
  const [cmd, args] =
    runtime === 'runc'
      ? ['runc', ['run', id]]
      : [
          'unshare',
          [
            '-m',
            '--propagation',
            'private',
            'sh',
            '-c',
            `mount -t cgroup2 none /sys/fs/cgroup && exec crun run ${id}`,
          ],
        ];
  return runCollect(cmd as string, args as string[], { cwd: bundleDir });
}

/** Runs cmd to its end, collecting stdout and stderr; `input` (when given) goes to its stdin,
 * else stdin is /dev/null. */
export function runCollect(
  cmd: string,
  args: string[],
  opts: Omit<SpawnOptions, 'stdio'> & { input?: string } = {},
): Promise<RunResult> {
  const { input, ...spawnOpts } = opts;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      ...spawnOpts,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin?.end(input);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - started }));
  });
}

/** Mounts in this (the host) namespace that could be ours: anything under env.dir (bundles,
 * rootfs) or a FUSE mount the daemon made (source strata-ctr:<id>). Other tests running at the
 * same time mount elsewhere. */
export function hostMounts(env: Env): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .filter((l) => l.split(' ')[4].startsWith(env.dir) || (l.split(' - ')[1] ?? '').includes(' strata-ctr:'))
    .sort();
}

export function processCounts(pid: number): { fds: number; threads: number } {
  return { fds: readdirSync(`/proc/${pid}/fd`).length, threads: readdirSync(`/proc/${pid}/task`).length };
}

export function removeEnv(env: Env): void {
  rmSync(env.dir, { recursive: true, force: true });
}

/** Polls until cond holds (async), or ms pass. */
export async function eventually(cond: () => Promise<boolean> | boolean, ms = 3000): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** env with its own socket and log file (under env.dir/NAME), for a daemon the hooks start. */
export function otherDaemonEnv(env: Env, name: string): Env {
  return { ...env, socket: join(env.dir, name, 'strata.sock'), logFile: join(env.dir, `${name}.log`) };
}

/** A temp store with `images` and a daemon serving it, plus the host mounts as they were then. */
export interface DaemonEnv {
  env: Env;
  daemon: Daemon;
  mountsBefore: string[];
}

export async function openDaemonEnv(images: ('busybox' | 'debian')[]): Promise<DaemonEnv> {
  const env = await makeEnv(images);
  try {
    const daemon = await startDaemon(env);
    return { env, daemon, mountsBefore: hostMounts(env) };
  } catch (err) {
    removeEnv(env);
    throw err;
  }
}

/** Stops the daemon, removes the temp dir, then asserts the daemon exited cleanly. */
export async function closeDaemonEnv(d: DaemonEnv | undefined): Promise<void> {
  if (d === undefined) return; // openDaemonEnv failed: it cleaned up itself
  let code: number | string;
  try {
    code = await d.daemon.stop();
  } finally {
    removeEnv(d.env);
  }
  assert.is(code, 0, 'the daemon exits cleanly on SIGTERM');
}

/** Runs fn against a fresh DaemonEnv, closed afterwards whatever fn did. */
export async function withDaemonEnv<T>(
  images: ('busybox' | 'debian')[],
  fn: (d: DaemonEnv) => Promise<T>,
): Promise<T> {
  const d = await openDaemonEnv(images);
  try {
    return await fn(d);
  } finally {
    await closeDaemonEnv(d);
  }
}

/** Polls until the daemon on env.socket serves no container (3 s at most). */
export async function servesNothing(env: Env): Promise<boolean> {
  return eventually(async () => (await served(env)).length === 0);
}

/** Nothing of ours left behind: the daemon on env.socket serves nothing (unless `served` is
 * false: no daemon there any more), no lease in env's store, the host mounts as before. */
export async function assertNoLeaks(
  env: Env,
  mountsBefore: string[],
  opts: { served?: boolean } = {},
): Promise<void> {
  if (opts.served !== false) assert.ok(await servesNothing(env), 'the daemon serves nothing');
  // A root leaves the daemon's list when its release starts; its lease goes when the release ends.
  if (!(await eventually(async () => (await leaseIds(env)).length === 0))) {
    assert.equal(await leaseIds(env), [], 'no lease');
  }
  assert.equal(hostMounts(env), mountsBefore, 'nothing mounted in the host namespace');
}

/** Asserts (polling) that the daemon's fds and threads are back to `before` at most. */
export async function assertDaemonNotGrown(
  daemon: Daemon,
  before: { fds: number; threads: number },
): Promise<void> {
  assert.ok(
    await eventually(() => {
      const now = processCounts(daemon.pid);
      return now.fds <= before.fds && now.threads <= before.threads;
    }),
    `daemon fds/threads grew: ${JSON.stringify(before)} -> ${JSON.stringify(processCounts(daemon.pid))}`,
  );
}

/** The strata CLI (from sources), synchronously. */
export function strataSync(args: string[]) {
  const [cmd, ...rest] = cliArgv(args);
  return spawnSync(cmd, rest, { encoding: 'utf8' });
}

/** `strata hooks install --dir DIR` for env's store and socket. */
export function installHooksCli(env: Env, dir: string) {
  return strataSync(['--root', env.storeRoot, 'hooks', 'install', '--dir', dir, '--socket', env.socket]);
}

export function dirEntries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function runtimeIds(runtime: string, runDir: string): string[] {
  const r = spawnSync(runtime, ['--root', join(runDir, runtime), 'list', '-q'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

/** After `strata run`s in runDir: no record, name or runtime state left, and assertNoLeaks. */
export async function assertRunsLeftNothing(d: DaemonEnv, runDir: string): Promise<void> {
  assert.equal(dirEntries(join(runDir, 'containers')), [], 'no container record or bundle');
  assert.equal(dirEntries(join(runDir, 'names')), [], 'no name held');
  assert.equal(runtimeIds('runc', runDir), [], 'runc knows no container');
  assert.equal(runtimeIds('crun', runDir), [], 'crun knows no container');
  await assertNoLeaks(d.env, d.mountsBefore);
}

/** The status callback an in-process test daemon (listenDaemon) answers `status` with. */
export function testDaemonStatus(env: Env, manager: ContainerManager): () => DaemonStatus {
  return () => ({
    pid: process.pid,
    version: 'test',
    store: env.storeRoot,
    socket: env.socket,
    logFile: env.logFile,
    startedAt: new Date().toISOString(),
    containers: manager.size,
    cachedIndexes: manager.indexes.size,
  });
}
