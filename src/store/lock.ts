// store.lock: shared for imports and readers, exclusive for gc and fsck (composefs-rs' model).
// Every store mutation holds it: import (and its commit), tag, image rm, lease create and release
// take it shared; gc, fsck (--repair) and the release of stale leases take it exclusively. gc
// sweeps ingest/, where every other mutation writes its temp files, so none may run during gc.
// Locks are flock(2) locks, so a process killed with -9 never leaves one behind. Acquisition
// polls without blocking so the caller can say why it waits ("waiting for gc") and give up.
//
// flock comes from the native addon; without it the lock is held by a util-linux flock(1)
// child whose stdin is our pipe: when we release (or die), its `cat` sees EOF and the lock goes.
import type { ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isErrno, UnavailableError } from '../errors.js';
import { lockPath } from './layout.js';
import { LOCK_EX, LOCK_NB, LOCK_SH, LOCK_UN, nativeFs } from './native.js';

export type LockMode = 'shared' | 'exclusive';

export interface LockOptions {
  /** Called once, when the lock is busy and we start waiting. */
  onWait?: () => void;
  /** Give up after this long (UnavailableError); default: wait forever. */
  timeoutMs?: number;
  pollMs?: number;
}

export interface Lock {
  readonly mode: LockMode;
  release(): Promise<void>;
}

type TryLock = () => Promise<Lock | undefined>;

export function lockStore(root: string, mode: LockMode, opts: LockOptions = {}): Promise<Lock> {
  return lockFile(lockPath(root), mode, opts);
}

export async function lockFile(path: string, mode: LockMode, opts: LockOptions = {}): Promise<Lock> {
  const native = nativeFs();
  const attempt: TryLock = native.flock
    ? () => tryNative(path, mode, native.flock!)
    : () => tryFlockCommand(path, mode);
  const started = Date.now();
  let waited = false;
  for (;;) {
    const lock = await attempt();
    if (lock) return lock;
    if (!waited) {
      waited = true;
      opts.onWait?.();
    }
    if (opts.timeoutMs !== undefined && Date.now() - started >= opts.timeoutMs) {
      throw new UnavailableError(`store is locked (${path}); gave up after ${opts.timeoutMs} ms`, {
        op: 'lock',
        path,
      });
    }
    await sleep(opts.pollMs ?? 100);
  }
}

async function tryNative(
  path: string,
  mode: LockMode,
  flock: (fd: number, op: number) => void,
): Promise<Lock | undefined> {
  // Synchronous open and close: the lock file is local and the flock non-blocking, and the
  // store lock is taken on every container's start and end (two thread-pool trips less each).
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600);
  try {
    flock(fd, (mode === 'shared' ? LOCK_SH : LOCK_EX) | LOCK_NB);
  } catch (err) {
    closeSync(fd);
    if (isErrno(err, 'EWOULDBLOCK') || isErrno(err, 'EAGAIN')) return undefined;
    throw err;
  }
  let released = false;
  return {
    mode,
    release: () => {
      if (!released) {
        released = true;
        flock(fd, LOCK_UN);
        closeSync(fd);
      }
      return Promise.resolve();
    },
  };
}

const BUSY = 75;

async function tryFlockCommand(path: string, mode: LockMode): Promise<Lock | undefined> {
  const flag = mode === 'shared' ? '--shared' : '--exclusive';
  // child_process only where the addon is missing: the FUSE server never pays for loading it.
  const { spawn } = await import('node:child_process');
  const child = spawn(
    'flock',
    [flag, '--nonblock', '-E', String(BUSY), path, '-c', 'echo locked; exec cat'],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const outcome = await new Promise<'locked' | number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout!.once('data', () => resolve('locked'));
    child.once('exit', (code) => resolve(code ?? -1));
  });
  if (outcome === BUSY) return undefined;
  if (outcome !== 'locked') {
    throw new UnavailableError(`cannot lock ${path}: flock exited with ${outcome}`, { op: 'lock', path });
  }
  return { mode, release: () => endChild(child) };
}

function endChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.stdin!.end();
  });
}

/** Run `fn` holding the store lock in `mode`. */
export async function withStoreLock<T>(
  root: string,
  mode: LockMode,
  fn: () => Promise<T>,
  opts?: LockOptions,
): Promise<T> {
  const lock = await lockStore(root, mode, opts);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
