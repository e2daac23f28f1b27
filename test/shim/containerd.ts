// A private containerd for the shim tests: its own config, root, state and sockets under the test's
// temp dir (CRI off), started with this worktree's containerd-shim-strata-v2 first on PATH and the
// test store's daemon socket in its environment, so `--runtime io.containerd.strata.v2` reaches
// the daemon built here. The busybox test image is imported into its content store as
// local/busybox:latest. (The foreign-content harness with CRI and a pause image is issue 10's
// other half; this is the minimum the Task service's tests need.)
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';

import { daemonRequest } from '../../src/daemon/client.js';
import { busyboxImage } from '../fixtures/images.js';
import { eventually, isAlive, type Env } from '../integration/harness.js';

export const IMAGE = 'local/busybox:latest';
export const RUNTIME = 'io.containerd.strata.v2';

export interface CtrResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface Containerd {
  dir: string;
  address: string;
  child: ChildProcess;
  env: NodeJS.ProcessEnv;
  ctr(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<CtrResult>;
  /** containerd's own log. */
  log(): string;
  stop(): Promise<void>;
}

/** native/build/Release/containerd-shim-strata-v2, from test/shim/ (tsx) or dist/test/shim/. */
function shimPath(): string {
  const rels = ['../../native/build/Release/', '../../../native/build/Release/'];
  const found = rels
    .map((r) => new URL(`${r}containerd-shim-strata-v2`, import.meta.url).pathname)
    .find(existsSync);
  if (!found) throw new Error('containerd-shim-strata-v2 is not built: run `npm install`');
  return found;
}

export async function startContainerd(env: Env): Promise<Containerd> {
  const dir = join(env.dir, 'ctd');
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  symlinkSync(shimPath(), join(bin, 'containerd-shim-strata-v2'));
  const address = join(dir, 'c.sock');
  writeFileSync(
    join(dir, 'config.toml'),
    [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", ' +
        '"io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]',
      '[grpc]',
      `  address = "${address}"`,
      '[ttrpc]',
      `  address = "${address}.ttrpc"`,
      '',
    ].join('\n'),
  );
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
    STRATA_SOCKET: env.socket,
    STRATA_ROOT: env.storeRoot,
    STRATA_LOG_FILE: env.logFile,
  };
  const logFile = join(dir, 'containerd.log');
  writeFileSync(logFile, '');
  const child = spawn('containerd', ['--config', join(dir, 'config.toml')], {
    env: childEnv,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.on('data', (d: Buffer) => writeFileSync(logFile, d, { flag: 'a' }));
  const ctr: Containerd['ctr'] = async (args, opts = {}) => {
    const r = await execa('ctr', ['--address', address, ...args], {
      reject: false,
      ...(opts.input === undefined ? { stdin: 'ignore' as const } : { input: opts.input }),
      timeout: opts.timeoutMs ?? 60_000,
      env: childEnv,
    });
    return { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode ?? -1 };
  };
  const up = await eventually(
    async () => (await ctr(['version'], { timeoutMs: 2000 })).exitCode === 0,
    15_000,
  );
  if (!up) {
    child.kill('SIGKILL');
    throw new Error(`containerd did not come up: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
  }
  const img = await busyboxImage();
  const imp = await ctr(['images', 'import', '--base-name', 'local/busybox', img.ociArchive]);
  if (imp.exitCode !== 0) throw new Error(`ctr images import: ${imp.stderr}`);
  return {
    dir,
    address,
    child,
    env: childEnv,
    ctr,
    log: () => readFileSync(logFile, 'utf8'),
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await eventually(() => child.exitCode !== null || child.signalCode !== null, 10_000);
      }
    },
  };
}

/** The pid of the daemon on env.socket (started on demand by the shim), or undefined. */
export async function daemonPid(env: Env): Promise<number | undefined> {
  try {
    const res = await daemonRequest(env.socket, { op: 'status' });
    return res.ok ? res.status?.pid : undefined;
  } catch {
    return undefined;
  }
}

/** SIGTERM to the daemon the shim started; waits for it to leave, and throws if it does not. A
 * shim `delete` that ran late (containerd stopping) may have started another: that one goes too. */
export async function stopDaemon(env: Env): Promise<void> {
  for (let round = 0; round < 3; round++) {
    const pid = await daemonPid(env);
    if (!pid) {
      await new Promise((r) => setTimeout(r, 500));
      if (!(await daemonPid(env))) return;
      continue;
    }
    process.kill(pid, 'SIGTERM');
    if (await eventually(() => !isAlive(pid), 10_000)) continue;
    // A daemon must leave on SIGTERM: end it so the run leaves nothing, and fail.
    process.kill(pid, 'SIGKILL');
    await eventually(() => !isAlive(pid), 5_000);
    throw new Error(`daemon ${pid} did not leave within 10 s of SIGTERM (killed it)`);
  }
}

/** Processes whose parent is `pid`. */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}
