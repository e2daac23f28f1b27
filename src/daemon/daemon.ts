// `strata daemon`: one long-lived process serving every container's root. Startup is guarded by
// a lock next to the socket so that two hooks starting a daemon at once end with one daemon (the
// other reports READY and leaves); a socket file nobody answers on is stale and replaced.
// Readiness goes to $NOTIFY_SOCKET (systemd Type=notify, or the createRuntime hook). A daemon the
// hook starts on demand is given exitIdleMs (idle.ts): it leaves once it has served nothing for
// that long, removing its socket; the next hook finds no daemon and starts a fresh one.
// On start it releases the leases whose holder is gone (a daemon killed with -9 left them): in the
// background, as it needs the store lock exclusively and a container start must not wait for an
// import to finish.
//
// Containers outlive the daemon (docs/architecture.md#sessions-outlive-the-daemon): every session's
// /dev/fuse fd is deposited with the fd holder (fd-holder.ts), which restarts a daemon that dies
// while it holds any; a starting daemon first takes every held session over (containers.ts adopt),
// then releases stale leases. `--upgrade` starts a daemon that takes the sessions over while the
// running one still serves them, then asks it to leave (the API's handover).
import { closeSync, openSync, readFileSync, rmdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';

import { daemonMainArgv } from '../executables.js';
import { limitServerHeap } from '../mount/serve.js';
import { constants, native } from '../native-addon.js';
import { isErrno } from '../errors.js';
import { describeHolder } from '../store/holder.js';
import { releaseStaleLeases } from '../store/leases.js';
import { openStore } from '../store/store.js';
import type { DaemonStatus } from '../schema/generated/daemon-api.js';
import { daemonRequest } from './client.js';
import { ContainerManager, heldMountName } from './containers.js';
import { FdHolder, fdHolderSocket, type HeldFd } from './fd-holder.js';
import { MirroredStore, SystemdFdStore, systemdFdStoreWanted, type SessionStore } from './fd-store.js';
import { journalDir } from './held-session.js';
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
  /** Take over from the daemon running on socketPath (strata daemon --upgrade). */
  upgrade?: boolean;
  /** Deposit sessions with the fd holder so that they outlive this daemon. Default true. */
  holdSessions?: boolean;
  /** What the fd holder runs when this daemon dies while it holds sessions. Default: the
   * daemon's own entry with these options; [] for none. */
  restartArgv?: string[];
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

/**
 * Takes `<socket>.lock` (held for the daemon's life), trying every `pollMs` for up to 10 s. While
 * it is busy, `whileBusy` may end the wait with a value; at the deadline, `timeout` names why.
 */
async function pollStartupLock<T>(
  socketPath: string,
  pollMs: number,
  whileBusy: () => Promise<T | undefined>,
  timeout: string,
): Promise<number | T> {
  const lockFd = openSync(`${socketPath}.lock`, 'a', 0o600);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      native.flock(lockFd, constants.LOCK_EX | constants.LOCK_NB);
      return lockFd;
    } catch (err) {
      if (!isErrno(err, 'EWOULDBLOCK') && !isErrno(err, 'EAGAIN')) throw err;
    }
    const ended = await whileBusy();
    if (ended !== undefined || Date.now() > deadline) {
      closeSync(lockFd);
      if (ended !== undefined) return ended;
      throw new Error(timeout);
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

function takeStartupLock(socketPath: string): Promise<number | 'running'> {
  ensureSocketDir(socketPath);
  return pollStartupLock(
    socketPath,
    50,
    async () => ((await socketAnswers(socketPath, 200)) ? ('running' as const) : undefined),
    `another strata daemon holds ${socketPath}.lock but does not answer on ${socketPath}`,
  );
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

/** How long a daemon the fd holder restarted stays without anything to serve. */
const RESTARTED_EXIT_IDLE_MS = 30_000;

/** The command that starts a daemon like this one again: its own entry (src/daemon/main.ts, no
 * yargs: this start is on the path of every stalled container). */
function restartArgvFor(opts: DaemonOptions, storeRoot: string): string[] {
  const args = [
    '--root',
    storeRoot,
    '--socket',
    resolve(opts.socketPath),
    '--log-file',
    resolve(opts.logFile),
  ];
  // Like a daemon the hook starts, it leaves once it serves nothing (RESTARTED_EXIT_IDLE_MS unless
  // this one had its own): nobody may be there to stop it (a test that killed its daemon).
  args.push('--exit-idle', String((opts.exitIdleMs ?? RESTARTED_EXIT_IDLE_MS) / 1000));
  if (opts.idleConnectionMs !== undefined)
    args.push('--idle-connection-timeout', String(opts.idleConnectionMs / 1000));
  return daemonMainArgv(args);
}

/** The startup lock, waiting for the daemon we asked to leave to let go of it. */
function takeLockAfterHandover(socketPath: string): Promise<number> {
  return pollStartupLock<never>(
    socketPath,
    2,
    async () => undefined,
    `the daemon on ${socketPath} did not leave within 10 s of handing over`,
  );
}

/**
 * Takes over every session the fd holder keeps (a daemon before this one died, or is leaving).
 * `beforeServing` runs between preparing (leases, indexes) and serving: the handover of a running
 * daemon, which must have stopped making and closing backing ids before their journal is read.
 */
async function adoptAll(
  manager: ContainerManager,
  holder: SessionStore,
  logger: Logger,
  beforeServing?: () => Promise<void>,
): Promise<void> {
  // Sessions, and the mount fds of roots still prepared (containers.ts heldMountName): those are
  // matched at serving time, from the last look (a leaving daemon may have attached one since).
  const isMount = (h: HeldFd): boolean => h.name.endsWith('.mnt');
  const take = (): { sessions: HeldFd[]; mounts: Map<string, HeldFd> } => {
    const all = holder.take();
    return {
      sessions: all.filter((h) => !isMount(h)),
      mounts: new Map(all.filter(isMount).map((h) => [h.name, h])),
    };
  };
  let { sessions: held, mounts } = take();
  const t0 = performance.now();
  const starts = await Promise.all(held.map((h) => manager.prepareAdoption(h)));
  const t1 = performance.now();
  if (beforeServing) {
    await beforeServing();
    // What the leaving daemon left: sessions it made after we looked, the mounts still prepared.
    for (const m of mounts.values()) closeSync(m.fd);
    const seen = new Set(held.map((h) => h.name));
    const now = take();
    mounts = now.mounts;
    for (const h of now.sessions) {
      if (seen.has(h.name)) {
        closeSync(h.fd);
        continue;
      }
      held = [...held, h];
      starts.push(await manager.prepareAdoption(h));
    }
  }
  const adopted = starts
    .map((start, i) => {
      const mount = mounts.get(heldMountName(held[i].name));
      mounts.delete(heldMountName(held[i].name));
      if (start) return start(mount);
      if (mount) closeSync(mount.fd);
      return false;
    })
    .filter(Boolean).length;
  // Mounts without a session: nothing can serve them.
  for (const m of mounts.values()) {
    closeSync(m.fd);
    try {
      holder.drop(m.name);
    } catch {
      // the holder went: nothing is held any more
    }
  }
  if (held.length === 0) return;
  const t2 = performance.now();
  logger.log(
    'info',
    `took over ${adopted} of ${held.length} held sessions (prepared in ${(t1 - t0).toFixed(1)} ms, ` +
      `serving ${(t2 - t1).toFixed(1)} ms later)`,
  );
}

/** Runs until stopped; resolves when everything is released and the socket removed. */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  let logger: Logger | undefined;
  let lockFd: number | 'running' | undefined;
  let reconciled: Promise<void> | undefined;
  let holder: FdHolder | undefined;
  limitServerHeap();
  try {
    logger = openLog(opts.logFile);
    const store = await openStore(opts.storeRoot);
    const hold = opts.holdSessions ?? true;
    // A systemd service's main process (INVOCATION_ID, a child of pid 1) is restarted by systemd
    // (systemd/strata.service); anything merely started under a systemd service is not.
    // With systemd's fd store (fd-store.ts) the service manager restarts us, whoever our parent is.
    const fdStore = hold && systemdFdStoreWanted();
    const underSystemd = fdStore || (Boolean(process.env.INVOCATION_ID) && process.ppid === 1);
    const restartArgv = opts.restartArgv ?? (underSystemd ? [] : restartArgvFor(opts, resolve(store.root)));
    const connectHolder = async (): Promise<FdHolder | undefined> => {
      try {
        return await FdHolder.connect(
          fdHolderSocket(opts.socketPath),
          restartArgv.length > 0 ? restartArgv : undefined,
        );
      } catch (err) {
        // Serving without it works; only restarts would cost the containers their roots.
        logger!.log(
          'warn',
          `no fd holder: container roots will not outlive this daemon: ${(err as Error).message}`,
        );
        return undefined;
      }
    };
    // Under systemd's fd store every session goes there too; the holder stays for --upgrade.
    const storeOf = (h: FdHolder | undefined): SessionStore | undefined =>
      fdStore
        ? new MirroredStore(h, new SystemdFdStore(process.env.NOTIFY_SOCKET!, journalDir(opts.socketPath)))
        : h;
    const newManager = (h: SessionStore | undefined) =>
      new ContainerManager({
        storeRoot: store.root,
        logger: logger!,
        holder: h,
        journalDir: journalDir(opts.socketPath),
      });
    let manager: ContainerManager | undefined;
    if (opts.upgrade && (await socketAnswers(opts.socketPath, 1000))) {
      // Serve every session alongside the running daemon first, then ask it to leave: the kernel
      // never lacks a reader.
      holder = await connectHolder();
      if (!holder) throw new Error('cannot take over without the fd holder');
      const sessions = storeOf(holder)!;
      manager = newManager(sessions);
      let t0 = 0;
      await adoptAll(manager, sessions, logger, async () => {
        t0 = performance.now();
        await daemonRequest(opts.socketPath, { op: 'handover' }, 15_000).catch(() => undefined);
      });
      lockFd = await takeLockAfterHandover(opts.socketPath);
      logger.log('info', `took over from the running daemon in ${(performance.now() - t0).toFixed(1)} ms`);
    } else {
      lockFd = await takeStartupLock(opts.socketPath);
    }
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
    if (!manager) {
      holder = hold ? await connectHolder() : undefined;
      const sessions = hold ? storeOf(holder) : undefined;
      manager = newManager(sessions);
      // Before stale leases go: an adopted session's lease is taken over, not released.
      if (sessions) await adoptAll(manager, sessions, logger);
    }
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
    const served = manager;
    let handedOver: ((why: string) => void) | undefined;
    const handoverStop = new Promise<string>((resolve) => (handedOver = resolve));
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
      handover: async () => {
        log.log('info', 'handing every session over to a new daemon (strata daemon --upgrade)');
        server.stopListening();
        await served.handOverAll(5000);
        if (typeof lockFd === 'number') closeSync(lockFd);
        lockFd = undefined; // the new daemon owns the socket now: not ours to remove
        holder?.close();
        holder = undefined;
        handedOver!('handed over to a new daemon');
      },
      ttrpc: { handlers: tasks.handlers(), toStatus },
    });
    logger.log(
      'info',
      `strata daemon ${version()} (pid ${process.pid}) serving store ${store.root} on ${opts.socketPath}`,
    );
    sdNotify({ READY: '1', MAINPID: String(process.pid), STATUS: `serving ${opts.socketPath}` });

    const stops = [opts.stopSignal ?? signalled(), handoverStop];
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
    holder?.close();
    try {
      rmdirSync(journalDir(opts.socketPath)); // only when no session is left to anyone
    } catch {
      // absent, or holds the journals of sessions a next daemon takes over
    }
    logger.log('info', 'stopped');
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    logger?.log('error', `daemon failed: ${message}`);
    sdNotify({ STATUS: `strata daemon failed: ${message} (log: ${opts.logFile})`, ERRNO: '1' });
    throw err;
  } finally {
    holder?.close();
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
