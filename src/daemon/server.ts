// The daemon socket. Two kinds of client share it, told apart by their first bytes: the hook
// executable ("STRATA-HOOK 1 <stage>\n" + state, then a half-close; answered once, with the
// mount fd as SCM_RIGHTS for createContainer) and JSON API clients (one request per line).
// Only root (or the daemon's own uid) may connect: checked with SO_PEERCRED on every connection.
//
// Connections cost the daemon an fd each, so none may stay open for nothing. A refused peer gets
// its refusal in its own protocol as soon as its first bytes say which (every client sends its
// request right after connecting), and is closed REFUSED_WAIT_MS after connecting in any case.
// Any other connection is closed after idleConnectionMs (default 30 s, --idle-connection-timeout)
// without a request in flight: one that has said nothing, an incomplete request, an API client
// between requests. A connection is never cut while the daemon works on its request (a hook
// waiting for its root) nor while it runs a container (a foreground `strata run`, however long).
// Only connections with something in flight count as busy for --exit-idle.
import { chmodSync, closeSync, existsSync, mkdirSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';

import { native, type PeerCred } from '../native-addon.js';
import type { DaemonResponse, DaemonStatus } from '../schema/generated/daemon-api.js';
import { StrataError } from '../errors.js';
import { errorResponse, handleApiLine } from './api.js';
import type { ContainerManager } from './containers.js';
import {
  decodeHookRequest,
  encodeHookReply,
  hookExitCode,
  isHookRequest,
  MAX_HOOK_STATE,
} from './hook-protocol.js';
import type { Logger } from './log.js';
import { encodeExit, isRunRequest } from '../run/protocol.js';
import { RUN_FAILED } from '../run/exit-codes.js';
import { serveRunConnection, type RunServiceOptions } from './run-service.js';
import { BackgroundRemovals } from './removals.js';
import { CgroupNamespace } from '../run/cgroup-ns.js';
import { isRuntimeRequest, serveRuntimeConnection } from './runtime-service.js';
import { serveTtrpc, type Handler, type Status } from '../ttrpc/server.js';

const MAX_HOOK_REQUEST = MAX_HOOK_STATE + 64;
const MAX_API_LINE = 64 * 1024;
/** How long a connection may stay open with no request in flight, by default. */
export const DEFAULT_IDLE_CONNECTION_MS = 30_000;
/** How long a refused peer may take to say which protocol it speaks (to be told why, in it). */
export const REFUSED_WAIT_MS = 500;

export interface DaemonServerOptions {
  socketPath: string;
  manager: ContainerManager;
  logger: Logger;
  status: () => DaemonStatus;
  /** The store this daemon serves (for `strata run` requests). */
  storeRoot: string;
  /** Close a connection after this long without a request in flight. Default 30 s. */
  idleConnectionMs?: number;
  /** The API's handover: leave everything to the asking daemon (strata daemon --upgrade). */
  handover?: () => Promise<void>;
  /** ttrpc methods (containerd's Task service, src/shim/) for connections that speak ttrpc. */
  ttrpc?: { handlers: ReadonlyMap<string, Handler>; toStatus: (err: unknown) => Status };
}

/**
 * The descriptor behind a net.Socket. Node keeps it on the libuv handle (`_handle.fd`), an
 * internal field that has been stable for years and is the only way to reach it; SO_PEERCRED and
 * SCM_RIGHTS need it. Use it only while nothing else writes on the socket.
 */
export function socketFd(socket: Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

export function peerAllowed(cred: PeerCred, ownUid = process.getuid?.() ?? 0): boolean {
  return cred.uid === 0 || cred.uid === ownUid;
}

export interface DaemonServer {
  server: Server;
  /** Client connections open right now, idle or not. */
  readonly connections: number;
  /** Connections with a request in flight or a container running (a foreground `strata run`). */
  readonly busy: number;
  /** Stops accepting and drops every open connection. */
  close(): Promise<void>;
  /** Stops accepting new connections; open ones go on. */
  stopListening(): void;
}

/** A socket directory we create is 0700; an existing one (e.g. /tmp) is left as it is. */
export function ensureSocketDir(socketPath: string): void {
  const dir = dirname(socketPath);
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }
}

export async function listenDaemon(opts: DaemonServerOptions): Promise<DaemonServer> {
  ensureSocketDir(opts.socketPath);
  const open = new Set<Socket>();
  const busy = new Set<Socket>();
  let cgroupNs: CgroupNamespace | undefined;
  const removals = new BackgroundRemovals(opts.logger, `${opts.socketPath}.removing`);
  const runOpts: DaemonServerOptions & RunServiceOptions = {
    ...opts,
    cgroupNamespace: (unshare) => (cgroupNs ??= new CgroupNamespace(unshare)),
    removals,
  };
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    open.add(socket);
    socket.once('close', () => {
      open.delete(socket);
      busy.delete(socket);
    });
    serveConnection(socket, runOpts, (on) => (on ? busy.add(socket) : busy.delete(socket)));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(opts.socketPath, 0o600);
  return {
    server,
    get connections() {
      return open.size;
    },
    get busy() {
      return busy.size;
    },
    stopListening: () => void server.close(),
    close: async () => {
      await Promise.all([
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const s of open) s.destroy();
        }),
        cgroupNs?.stop(),
        removals.settle(),
      ]);
    },
  };
}

function refusal(cred: PeerCred): string {
  return `permission denied: only root may use the strata daemon (this client has uid ${cred.uid}, pid ${cred.pid})`;
}

function serveConnection(
  socket: Socket,
  opts: DaemonServerOptions & RunServiceOptions,
  setBusy: (on: boolean) => void,
): void {
  const fd = socketFd(socket);
  let cred: PeerCred;
  try {
    cred = native.getPeerCred(fd);
  } catch (err) {
    opts.logger.log(
      'warn',
      `dropping a connection whose peer cannot be identified: ${(err as Error).message}`,
    );
    socket.destroy();
    return;
  }
  const allowed = peerAllowed(cred);
  if (!allowed) opts.logger.log('warn', `refused a connection from uid ${cred.uid} (pid ${cred.pid})`);
  let mode: 'unknown' | 'hook' | 'api' | 'run' | 'ttrpc' = 'unknown';
  let chunks: Buffer[] = [];
  let size = 0;
  let apiQueue = Promise.resolve();
  let apiPending = 0;
  socket.on('error', (err) => opts.logger.log('warn', `client connection (pid ${cred.pid}): ${err.message}`));

  // The idle clock runs while nothing is in flight; a refused peer's deadline never stops.
  const idleMs = allowed ? (opts.idleConnectionMs ?? DEFAULT_IDLE_CONNECTION_MS) : REFUSED_WAIT_MS;
  let idleTimer: NodeJS.Timeout | undefined;
  const idle = (on: boolean): void => {
    clearTimeout(idleTimer);
    idleTimer = undefined;
    setBusy(!on);
    if (!on || socket.destroyed) return;
    idleTimer = setTimeout(() => {
      if (allowed) {
        opts.logger.log(
          'warn',
          `closing a connection from pid ${cred.pid} (uid ${cred.uid}): no request for ${idleMs / 1000} s`,
        );
      }
      socket.destroy();
    }, idleMs);
    idleTimer.unref();
  };
  socket.once('close', () => clearTimeout(idleTimer));
  idle(true);

  const apiLines = (): void => {
    let buf = Buffer.concat(chunks);
    let nl: number;
    while ((nl = buf.indexOf(0x0a)) >= 0) {
      const line = buf.subarray(0, nl).toString('utf8');
      buf = buf.subarray(nl + 1);
      if (line.trim() === '') continue;
      if (apiPending++ === 0) idle(false);
      apiQueue = apiQueue.then(async () => {
        const res = await handleApiLine(line, opts.manager, opts.status, opts.handover);
        if (!socket.destroyed) socket.write(JSON.stringify(res) + '\n');
        if (--apiPending === 0) idle(true);
      });
    }
    chunks = [buf];
    size = buf.length;
    if (size > MAX_API_LINE) {
      socket.end(JSON.stringify(errorResponse(new Error('request line too long'))) + '\n');
    }
  };

  socket.on('data', (data: Buffer) => {
    chunks.push(data);
    size += data.length;
    if (mode === 'unknown') {
      const head = Buffer.concat(chunks);
      // A ttrpc frame starts with its length, big-endian and at most 4 MiB: a 0 byte, which no
      // other protocol here starts with (containerd's shim client: src/shim/).
      if (head[0] === 0 && opts.ttrpc) {
        socket.removeAllListeners('data');
        socket.removeAllListeners('end');
        if (!allowed) {
          socket.destroy();
          return;
        }
        idle(false); // containerd keeps its connection for the task's whole life
        const ttrpc = opts.ttrpc;
        serveTtrpc(socket, { ...ttrpc, log: (level, message) => opts.logger.log(level, message) }, head);
        mode = 'ttrpc';
        return;
      }
      if (head.length < 12 && !head.includes(0x0a)) return;
      mode = isHookRequest(head) ? 'hook' : isRunRequest(head) ? 'run' : 'api';
      if (!allowed) {
        refuse(mode);
        return;
      }
      if (mode === 'run') {
        socket.removeAllListeners('data');
        socket.removeAllListeners('end');
        idle(false); // for as long as the container runs
        if (isRuntimeRequest(head)) serveRuntimeConnection(socket, head, cred.pid, opts);
        else serveRunConnection(socket, head, cred.pid, opts);
        return;
      }
    }
    if (mode === 'api') apiLines();
    else if (size > MAX_HOOK_REQUEST) {
      socket.end(encodeHookReply({ ok: false, message: 'hook request too large' }));
      mode = 'api'; // ignore the rest
    }
  });
  socket.on('end', () => {
    if (!allowed) return;
    if (mode === 'hook' || (mode === 'unknown' && size > 0 && isHookRequest(Buffer.concat(chunks)))) {
      idle(false);
      void answerHook(socket, fd, Buffer.concat(chunks), opts);
    } else void apiQueue.then(() => socket.end());
  });

  /** The refusal, in the protocol the peer speaks; what else it sends is ignored. */
  const refuse = (protocol: 'hook' | 'api' | 'run'): void => {
    socket.removeAllListeners('data');
    socket.on('data', () => undefined);
    const message = refusal(cred);
    const reply: Buffer =
      protocol === 'hook'
        ? encodeHookReply({ ok: false, message })
        : protocol === 'run'
          ? encodeExit(RUN_FAILED, `strata: ${message}`)
          : Buffer.from(
              JSON.stringify({
                ok: false,
                error: { kind: 'PermissionDenied', message },
              } satisfies DaemonResponse) + '\n',
            );
    socket.end(reply);
  };
}

/** The hook's text answer: core errors as they are; anything else points at the log. */
function hookMessage(err: unknown, logFile: string): string {
  if (err instanceof StrataError) return err.message;
  return `internal error: ${err instanceof Error ? err.message : String(err)} (see the daemon log ${logFile})`;
}

async function answerHook(
  socket: Socket,
  fd: number,
  data: Buffer,
  opts: DaemonServerOptions,
): Promise<void> {
  const { manager, logger } = opts;
  let reply: Buffer;
  let sendFd = -1;
  let stage = '?';
  try {
    const req = decodeHookRequest(data);
    stage = req.stage;
    if (req.stage === 'createRuntime') {
      await manager.createRuntime(req.stateJson);
      reply = encodeHookReply({ ok: true });
    } else if (req.stage === 'createContainer') {
      const a = await manager.createContainer(req.stateJson);
      sendFd = a.mountFd;
      reply = encodeHookReply({ ok: true, rootfs: a.rootfs, readonly: a.readonly });
    } else {
      await manager.poststop(req.stateJson);
      reply = encodeHookReply({ ok: true });
    }
  } catch (err) {
    if (sendFd >= 0) closeSync(sendFd); // its session ends, which releases the container
    sendFd = -1;
    const level = err instanceof StrataError ? 'warn' : 'error';
    const detail =
      err instanceof StrataError || !(err instanceof Error) ? String(err) : (err.stack ?? err.message);
    logger.log(level, `hook ${stage} failed: ${detail}`);
    reply = encodeHookReply({
      ok: false,
      message: hookMessage(err, logger.file),
      exitCode: hookExitCode(err),
    });
  }
  if (socket.destroyed) {
    if (sendFd >= 0) closeSync(sendFd);
    return;
  }
  if (sendFd < 0) {
    socket.end(reply);
    return;
  }
  try {
    native.sendFds(fd, reply, [sendFd]);
  } catch (err) {
    logger.log('warn', `sending the mount to the createContainer hook failed: ${(err as Error).message}`);
  } finally {
    // Our copy would pin the mount forever: the hook's copy (or nobody's) decides its life now.
    closeSync(sendFd);
  }
  socket.end();
}
