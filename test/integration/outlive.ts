// Containers outlive the daemon (issue 12): N containers read every file under /etc and /usr of
// the Debian image in a loop, checking each file's sha256 against the image's own contents (read
// through a `strata mount` of the same image beforehand), while the daemon is killed with -9 and
// restarted by the fd holder, or replaced with `strata daemon --upgrade`. Shared by the fast test
// (test/integration/outlive.test.ts) and the full loop (scripts/outlive-soak.ts).
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { lstat, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { daemonRequest } from '../../src/daemon/client.js';
import { fdHolderSocket } from '../../src/daemon/fd-holder.js';
import { cliArgv } from '../../src/executables.js';
import { mountImage } from '../../src/mount/attach.js';
import { listLeases } from '../../src/store/leases.js';
import * as assert from 'uvu/assert';

import {
  daemonCliArgv,
  eventually,
  hostMounts,
  isAlive,
  makeEnv,
  removeEnv,
  runCollect,
  startDaemon,
  type Daemon,
  type Env,
  type RunResult,
} from './harness.js';

/** What the containers read (relative to /). */
export const SCANNED = ['etc', 'usr'];
/** Bind mounts the runtime puts over image files: their contents are the host's. */
const BIND_MOUNTED = new Set(['/etc/hosts', '/etc/hostname', '/etc/resolv.conf']);

/** path -> sha256 hex of every regular file under SCANNED, read through a host mount. */
export async function referenceDigests(env: Env, image = 'debian'): Promise<Map<string, string>> {
  const dir = join(env.dir, 'reference');
  mkdirSync(dir, { recursive: true });
  const host = await mountImage({ storeRoot: env.storeRoot, ref: image, dir, method: 'mount-api' });
  const out = new Map<string, string>();
  try {
    const walk = async (rel: string): Promise<void> => {
      for (const name of await readdir(join(dir, rel))) {
        const r = `${rel}/${name}`;
        const st = await lstat(join(dir, r));
        if (st.isDirectory()) await walk(r);
        else if (st.isFile())
          out.set(
            r,
            createHash('sha256')
              .update(await readFile(join(dir, r)))
              .digest('hex'),
          );
      }
    };
    for (const top of SCANNED) await walk(`/${top}`);
  } finally {
    await host.stop();
  }
  return out;
}

/** The container's loop: one pass = sha256sum of every file; failures and errors to /out. */
const LOOP = [
  'i=0',
  'while [ ! -e /out/stop ]; do',
  `  find ${SCANNED.map((d) => `/${d}`).join(' ')} -xdev -type f -print0 2>>/out/errors | xargs -0 sha256sum > /out/pass.tmp 2>>/out/errors || echo "pass $i failed" >> /out/errors`,
  '  mv /out/pass.tmp /out/pass.$i',
  '  i=$((i+1))',
  'done',
  'touch /out/done',
].join('\n');

export interface Reader {
  name: string;
  out: string;
}

/** The environment that points the CLI (or the native front end) at the test's store and daemon. */
export function cliEnv(env: Env): NodeJS.ProcessEnv {
  return {
    ...process.env,
    STRATA_ROOT: env.storeRoot,
    STRATA_SOCKET: env.socket,
    STRATA_RUN_DIR: join(env.dir, 'rundir'),
    STRATA_LOG_FILE: env.logFile,
  };
}

export function strataCli(env: Env, args: string[]): Promise<RunResult> {
  const [cmd, ...rest] = cliArgv(args);
  return runCollect(cmd, rest, { env: cliEnv(env) });
}

export async function startReaders(env: Env, n: number): Promise<Reader[]> {
  const readers: Reader[] = [];
  for (let i = 0; i < n; i++) {
    const name = `reader-${i}`;
    const out = join(env.dir, name);
    mkdirSync(out, { recursive: true });
    const r = await strataCli(env, [
      'run',
      '-d',
      '--rm',
      '--name',
      name,
      '-v',
      `${out}:/out`,
      'debian',
      'sh',
      '-c',
      LOOP,
    ]);
    if (r.code !== 0) throw new Error(`starting ${name}: ${r.stderr}`);
    readers.push({ name, out });
  }
  return readers;
}

/** Completed passes of a reader. */
export function passes(r: Reader): number {
  return readdirSync(r.out).filter((f) => /^pass\.[0-9]+$/.test(f)).length;
}

/** Waits until every reader has completed `n` more passes than it had. */
export async function morePasses(readers: Reader[], n: number, ms: number): Promise<boolean> {
  const base = readers.map(passes);
  return eventually(() => readers.every((r, i) => passes(r) >= base[i] + n), ms);
}

/** Stops the readers' loops and waits for them (and --rm) to finish. */
export async function stopReaders(readers: Reader[], ms = 60_000): Promise<boolean> {
  for (const r of readers) writeFileSync(join(r.out, 'stop'), '');
  return eventually(() => readers.every((r) => existsSync(join(r.out, 'done'))), ms);
}

export interface Checked {
  passes: number;
  files: number;
  problems: string[];
}

/** Every pass of every reader: no error, every scanned file present, every digest right. */
export function checkReaders(readers: Reader[], reference: Map<string, string>): Checked {
  const problems: string[] = [];
  let total = 0;
  let files = 0;
  for (const r of readers) {
    const errors = existsSync(join(r.out, 'errors')) ? readFileSync(join(r.out, 'errors'), 'utf8') : '';
    if (errors.trim()) problems.push(`${r.name}: ${errors.trim().split('\n').slice(0, 5).join('; ')}`);
    for (const f of readdirSync(r.out).filter((x) => /^pass\.[0-9]+$/.test(x))) {
      total++;
      const seen = new Map<string, string>();
      for (const line of readFileSync(join(r.out, f), 'utf8').split('\n')) {
        const m = /^([0-9a-f]{64}) {2}(.*)$/.exec(line);
        if (m) seen.set(m[2], m[1]);
      }
      for (const [path, digest] of reference) {
        if (BIND_MOUNTED.has(path)) continue;
        files++;
        const got = seen.get(path);
        if (got !== digest) {
          problems.push(`${r.name} ${f}: ${path} ${got === undefined ? 'missing' : `has digest ${got}`}`);
          if (problems.length > 20) return { passes: total, files, problems };
        }
      }
    }
  }
  return { passes: total, files, problems };
}

export async function daemonPid(env: Env): Promise<number | undefined> {
  try {
    const res = await daemonRequest(env.socket, { op: 'status' }, 1000);
    return res.status?.pid;
  } catch {
    return undefined;
  }
}

/** kill -9 of the daemon; resolves with the new daemon's pid (restarted by the fd holder) and the
 * time from the kill until it answered on its socket. */
export async function killDaemon(env: Env, pid: number): Promise<{ pid: number; ms: number }> {
  const t0 = performance.now();
  process.kill(pid, 'SIGKILL');
  for (;;) {
    const now = await daemonPid(env);
    if (now !== undefined && now !== pid) return { pid: now, ms: performance.now() - t0 };
    if (performance.now() - t0 > 30_000) throw new Error('no daemon came back within 30 s of kill -9');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** `strata daemon --upgrade` in the background; resolves with the new daemon's pid and how long
 * the handover took, from start to the old daemon's exit. */
export async function upgradeDaemon(env: Env, oldPid: number): Promise<{ pid: number; ms: number }> {
  const [cmd, ...args] = daemonCliArgv(env, '--upgrade');
  const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
  child.unref();
  const t0 = performance.now();
  const gone = await eventually(() => !isAlive(oldPid), 30_000);
  if (!gone) throw new Error('the old daemon did not leave after --upgrade');
  for (;;) {
    const now = await daemonPid(env);
    if (now !== undefined && now !== oldPid) return { pid: now, ms: performance.now() - t0 };
    if (performance.now() - t0 > 30_000) throw new Error('the upgraded daemon does not answer');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** SIGTERM to a daemon that is not our child, and wait for it (and the fd holder) to go. */
export async function stopDaemon(env: Env, pid: number): Promise<boolean> {
  process.kill(pid, 'SIGTERM');
  return eventually(() => !isAlive(pid) && !existsSync(fdHolderSocket(env.socket)), 20_000);
}

/** Processes (other than this one) whose command line names something under `dir`. */
export function processesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^[0-9]+$/.test(p))) {
    if (Number(pid) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(dir)) out.push(`${pid}: ${cmdline}`);
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

/** What must be left once everything stopped: nothing. */
export async function leftovers(env: Env, mountsBefore: string[]): Promise<string[]> {
  const left: string[] = [];
  const leases = await listLeases(env.storeRoot);
  if (leases.length) left.push(`leases: ${leases.map((l) => l.id).join(' ')}`);
  const mounts = hostMounts(env).filter((m) => !mountsBefore.includes(m));
  if (mounts.length) left.push(`mounts: ${mounts.join('; ')}`);
  const procs = processesUnder(env.dir);
  if (procs.length) left.push(`processes: ${procs.join('; ')}`);
  const runDir = join(env.dir, 'run');
  const files = existsSync(runDir) ? readdirSync(runDir).filter((f) => !f.endsWith('.lock')) : [];
  if (files.length) left.push(`files next to the socket: ${files.join(' ')}`);
  return left;
}

/** A test's env with its first daemon running, and the host's mounts of it before anything ran. */
export interface OutliveRun {
  env: Env;
  first: Daemon;
  mountsBefore: string[];
}

/**
 * Runs `fn` on a fresh test env (with `images`) and a daemon started on it. On a failure, the
 * daemon log's last 40 lines go to stderr before the error; the env is removed either way
 * (kept with $STRATA_KEEP_TEST_DIR).
 */
export async function withOutliveDaemon(
  images: ('busybox' | 'debian')[],
  fn: (run: OutliveRun) => Promise<void>,
): Promise<void> {
  const env = await makeEnv(images);
  try {
    const first = await startDaemon(env);
    await fn({ env, first, mountsBefore: hostMounts(env) });
  } catch (err) {
    const log = existsSync(env.logFile) ? readFileSync(env.logFile, 'utf8') : '';
    process.stderr.write(`daemon log:\n${log.split('\n').slice(-40).join('\n')}\n`);
    throw err;
  } finally {
    if (!process.env.STRATA_KEEP_TEST_DIR) removeEnv(env);
  }
}

/** kill -9 of the test's first daemon (a child of the test): the fd holder's restart, and how the
 * first one ended (`SIGKILL`). */
export async function killFirstDaemon(
  run: OutliveRun,
): Promise<{ pid: number; ms: number; firstEnd: number | string }> {
  const killed = await killDaemon(run.env, run.first.pid);
  return { ...killed, firstEnd: await run.first.stop() };
}

/** The end of every outlive test: the daemon `pid` (and the fd holder) leave on SIGTERM, and
 * nothing is left (leases, mounts, processes, files next to the socket). */
export async function assertDaemonLeftNothing(run: OutliveRun, pid: number): Promise<void> {
  assert.ok(await stopDaemon(run.env, pid), 'the last daemon and the fd holder left');
  assert.equal(await leftovers(run.env, run.mountsBefore), [], 'nothing is left');
}
