// `strata daemon`: one long-lived process serving every container's root. Startup is guarded by
// a lock next to the socket so that two hooks starting a daemon at once end with one daemon (the
// other reports READY and leaves); a socket file nobody answers on is stale and replaced.
// Readiness goes to $NOTIFY_SOCKET (systemd Type=notify, or the createRuntime hook). A daemon the
// hook starts on demand is given exitIdleMs (idle.ts): it leaves once it has served nothing for
// that long, removing its socket; the next hook finds no daemon and starts a fresh one.
// On start it releases the leases whose holder is gone (a daemon killed with -9 left them): in the
// background, as it needs the store lock exclusively and a container start must not wait for an
// import to finish.
import { closeSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';

import { limitServerHeap } from '../mount/serve.js';
import { constants, native } from '../native-addon.js';
import { isErrno } from '../errors.js';
import { describeHolder } from '../store/holder.js';
import { releaseStaleLeases } from '../store/leases.js';
import { openStore } from '../store/store.js';
import type { DaemonStatus } from '../schema/generated/daemon-api.js';
import { ContainerManager } from './containers.js';
import { toStatus } from '../shim/errors.js';
import { TaskService } from '../shim/task-service.js';
import { watchIdle, type IdleWatch } from './idle.js';
import { openLog, type Logger } from './log.js';
import { sdNotify } from './notify.js';
import { ensureSocketDir, listenDaemon } from './server.js';

export interface DaemonOptions {
  socketPath: string;
  storeRoot?: string;
  logFile: string;
  /** Resolves when the daemon should stop; default: SIGTERM or SIGINT. */
  stopSignal?: Promise<string>;
  /** Exit after this long with no container served and no request in flight. Default: never. */
  exitIdleMs?: number;
  /** Close a client connection after this long without a request in flight (server.ts). */
  idleConnectionMs?: number;
}

function version(): string {
  // From src/daemon (tsx) or dist/src/daemon (compiled).
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'strata' && pkg.version) return pkg.version;
    } catch {
      // not here; try the next
    }
  }
  return 'unknown';
}

/** Whether something answers on the socket. */
export function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

async function takeStartupLock(socketPath: string): Promise<number | 'running'> {
  ensureSocketDir(socketPath);
  const lockFd = openSync(`${socketPath}.lock`, 'a', 0o600);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      native.flock(lockFd, constants.LOCK_EX | constants.LOCK_NB);
      return lockFd;
    } catch (err) {
      if (!isErrno(err, 'EWOULDBLOCK') && !isErrno(err, 'EAGAIN')) throw err;
    }
    if (await socketAnswers(socketPath, 200)) {
      closeSync(lockFd);
      return 'running';
    }
    if (Date.now() > deadline) {
      closeSync(lockFd);
      throw new Error(`another strata daemon holds ${socketPath}.lock but does not answer on ${socketPath}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function signalled(): Promise<string> {
  return new Promise((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve(sig));
  });
}

/** Releases every lease whose holder no longer exists, with a log line each. */
export async function reconcileLeases(storeRoot: string, logger: Logger): Promise<void> {
  try {
    const released = await releaseStaleLeases(storeRoot, undefined, {
      onWait: () => logger.log('info', 'waiting for the store lock to release stale leases'),
    });
    for (const lease of released) {
      const container = lease.labels?.container ? ` of container ${lease.labels.container}` : '';
      logger.log(
        'info',
        `released stale lease ${lease.id}${container} (image ${lease.image}): ` +
          `its holder, ${lease.holder ? describeHolder(lease.holder) : '?'}, no longer exists`,
      );
    }
  } catch (err) {
    logger.log('error', `releasing stale leases: ${(err as Error).message}`);
  }
}

/** Runs until stopped; resolves when everything is released and the socket removed. */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  let logger: Logger | undefined;
  let lockFd: number | 'running' | undefined;
  let reconciled: Promise<void> | undefined;
  limitServerHeap();
  try {
    logger = openLog(opts.logFile);
    const store = await openStore(opts.storeRoot);
    lockFd = await takeStartupLock(opts.socketPath);
    if (lockFd === 'running') {
      logger.log('info', `another strata daemon already serves ${opts.socketPath}; leaving it to serve`);
      sdNotify({ READY: '1', STATUS: `already served by another daemon at ${opts.socketPath}` });
      return;
    }
    try {
      unlinkSync(opts.socketPath); // stale: we hold the lock, so no live daemon owns it
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    const manager = new ContainerManager({ storeRoot: store.root, logger });
    reconciled = reconcileLeases(store.root, logger);
    // One daemon serves every running container's root: a bug in one request must not take the
    // others' filesystems down. Log it and keep serving.
    const log0 = logger;
    process.on('uncaughtException', (err) => log0.log('error', `uncaught: ${err.stack ?? err.message}`));
    process.on('unhandledRejection', (err) =>
      log0.log(
        'error',
        `unhandled rejection: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      ),
    );
    const startedAt = new Date().toISOString();
    const log = logger;
    const status = (): DaemonStatus => ({
      pid: process.pid,
      version: version(),
      store: store.root,
      socket: opts.socketPath,
      logFile: log.file,
      startedAt,
      containers: manager.size,
      cachedIndexes: manager.indexes.size,
    });
    const tasks = new TaskService({
      storeRoot: resolve(store.root),
      socketPath: resolve(opts.socketPath),
      stateDir: join(dirname(resolve(opts.socketPath)), 'shim'),
      roots: manager,
      log: (level, message) => log.log(level, message),
    });
    const server = await listenDaemon({
      socketPath: resolve(opts.socketPath),
      storeRoot: resolve(store.root),
      manager,
      logger,
      status,
      idleConnectionMs: opts.idleConnectionMs,
      ttrpc: { handlers: tasks.handlers(), toStatus },
    });
    logger.log(
      'info',
      `strata daemon ${version()} (pid ${process.pid}) serving store ${store.root} on ${opts.socketPath}`,
    );
    sdNotify({ READY: '1', MAINPID: String(process.pid), STATUS: `serving ${opts.socketPath}` });

    const stops = [opts.stopSignal ?? signalled()];
    let idle: IdleWatch | undefined;
    const idleMs = opts.exitIdleMs;
    if (idleMs !== undefined) {
      stops.push(
        new Promise<string>((resolve) => {
          idle = watchIdle({
            idleMs,
            // Idle connections do not count: they are closed in time, and must not keep us here.
            busy: () => manager.size > 0 || server.busy > 0 || tasks.size > 0,
            onIdle: () =>
              resolve(`idle: no container served for ${idleMs / 1000} s; started on demand with --exit-idle`),
          });
        }),
      );
    }
    const why = await Promise.race(stops);
    idle?.stop();
    logger.log('info', `stopping (${why})`);
    await server.close();
    tasks.close();
    await manager.releaseAll(`the daemon is stopping (${why})`);
    await reconciled;
    logger.log('info', 'stopped');
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    logger?.log('error', `daemon failed: ${message}`);
    sdNotify({ STATUS: `strata daemon failed: ${message} (log: ${opts.logFile})`, ERRNO: '1' });
    throw err;
  } finally {
    if (typeof lockFd === 'number') {
      try {
        unlinkSync(opts.socketPath);
      } catch {
        // already gone
      }
      closeSync(lockFd);
    }
  }
}
