// Shared by the bundle-based integration tests: a temp store with real images, a strata daemon
// as a child process on a temp socket, bundles written by `writeBundle`, and real runc / crun.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { writeBundle } from '../../hooks/bundle.js';
import { cliArgv, daemonArgv, hookExecutable } from '../../hooks/paths.js';
import { daemonRequest } from '../../src/daemon/client.js';
import type { RunOptions } from '../../src/spec/options.js';
import type { ServedContainer } from '../../src/spec/generated/daemon-api.js';
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

/** `strata daemon` as a child process; resolves once its socket answers. */
export async function startDaemon(env: Env): Promise<Daemon> {
  const [cmd, ...args] = cliArgv([
    '--root',
    env.storeRoot,
    'daemon',
    '--socket',
    env.socket,
    '--log-file',
    env.logFile,
  ]);
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
 * (crun 1.8 refuses this host's hybrid layout: ENVIRONMENT.md). */
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
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd as string, args as string[], {
      cwd: bundleDir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
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
