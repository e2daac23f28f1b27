// The shim tests' containerd: the private containerd of test/integration/containerd-harness.ts
// (CRI off), with this worktree's containerd-shim-strata-v2 first on PATH and the test store's
// daemon socket in its environment, so `--runtime io.containerd.strata.v2` reaches the daemon built
// here. The busybox test image is imported into its content store as local/busybox:latest. Also
// the helpers for the daemon the shim starts on demand.
import { readFileSync } from 'node:fs';
import * as assert from 'uvu/assert';

import { daemonRequest } from '../../src/daemon/client.js';
import { busyboxImage } from '../fixtures/images.js';
import { Containerd as Harness } from '../integration/containerd-harness.js';
import {
  eventually,
  hostMounts,
  isAlive,
  leaseIds,
  makeEnv,
  removeEnv,
  type Env,
} from '../integration/harness.js';

export const IMAGE = 'local/busybox:latest';
export const RUNTIME = 'io.containerd.strata.v2';

export interface CtrResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface Containerd {
  /** The harness's temp dir; the shim is linked at `<dir>/bin/containerd-shim-strata-v2`. */
  dir: string;
  address: string;
  env: NodeJS.ProcessEnv;
  harness: Harness;
  ctr(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<CtrResult>;
  /** containerd's own log. */
  log(): string;
  /** The harness's close(): asserts no task, container, shim process or mount is left. */
  stop(): Promise<void>;
}

/** `containerdImport` (default on): the daemon imports a task's image from containerd's
 * store when strata lacks it; off, such tasks run on containerd's rootfs ($STRATA_CONTAINERD_IMPORT). */
export async function startContainerd(
  env: Env,
  opts: { containerdImport?: boolean } = {},
): Promise<Containerd> {
  const h = await Harness.start({
    cri: false,
    strata: env,
    env: { STRATA_CONTAINERD_IMPORT: opts.containerdImport === false ? '0' : '1' },
  });
  try {
    await h.importArchive((await busyboxImage()).ociArchive, IMAGE);
  } catch (err) {
    await h.close().catch(() => undefined);
    throw err;
  }
  return {
    dir: h.dir,
    address: h.address,
    env: h.env,
    harness: h,
    ctr: async (args, opts = {}) => {
      const r = await h.ctr(args, { input: opts.input, timeoutMs: opts.timeoutMs ?? 60_000 });
      return { stdout: r.stdout, stderr: r.stderr, exitCode: r.code };
    },
    log: () => h.log(),
    stop: async () => {
      await h.close();
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

/** A shim test file's store (busybox), the host's mounts of it before anything ran, and a private
 * containerd on it (startContainerd). If containerd does not start, the store is removed. */
export async function openShimTests(
  opts: { containerdImport?: boolean } = {},
): Promise<{ env: Env; ctd: Containerd; mountsBefore: string[] }> {
  const env = await makeEnv(['busybox']);
  try {
    const mountsBefore = hostMounts(env);
    return { env, ctd: await startContainerd(env, opts), mountsBefore };
  } catch (err) {
    removeEnv(env);
    throw err;
  }
}

/** The end of a shim test file: `close` (containerd's close, with its leak checks), then the
 * daemon the shim started stops (stopDaemon), then the store is removed, whatever failed. */
export async function closeShimTests(env: Env | undefined, close: () => Promise<unknown>): Promise<void> {
  try {
    await close();
    if (env) await stopDaemon(env);
  } finally {
    if (env) removeEnv(env);
  }
}

/** Every root the shim's daemon served is gone: the host's mounts are back to `mountsBefore` and
 * no lease is held (5 s each: the daemon releases after the task's exit). */
export async function assertRootsReleased(env: Env, mountsBefore: string[]): Promise<void> {
  assert.ok(
    await eventually(() => hostMounts(env).join('\n') === mountsBefore.join('\n'), 5000),
    `mounts left: ${hostMounts(env).join('\n')}`,
  );
  assert.ok(await eventually(async () => (await leaseIds(env)).length === 0, 5000), 'no lease');
}
