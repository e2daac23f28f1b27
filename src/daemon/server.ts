// The daemon socket. Two kinds of client share it, told apart by their first bytes: the hook
// executable ("STRATA-HOOK 1 <stage>\n" + state, then a half-close; answered once, with the
// mount fd as SCM_RIGHTS for createContainer) and JSON API clients (one request per line).
// Only root (or the daemon's own uid) may connect: checked with SO_PEERCRED on every connection.
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
import { CgroupNamespace } from '../run/cgroup-ns.js';

const MAX_HOOK_REQUEST = MAX_HOOK_STATE + 64;
const MAX_API_LINE = 64 * 1024;

export interface DaemonServerOptions {
  socketPath: string;
  manager: ContainerManager;
  logger: Logger;
  status: () => DaemonStatus;
  /** The store this daemon serves (for `strata run` requests). */
  storeRoot: string;
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
  /** Client connections open right now (a hook or API request in flight). */
  readonly connections: number;
  /** Stops accepting and drops every open connection. */
  close(): Promise<void>;
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
  let cgroupNs: CgroupNamespace | undefined;
  const runOpts: DaemonServerOptions & RunServiceOptions = {
    ...opts,
    cgroupNamespace: (unshare) => (cgroupNs ??= new CgroupNamespace(unshare)),
  };
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    serveConnection(socket, runOpts);
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
    close: async () => {
      await Promise.all([
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const s of open) s.destroy();
        }),
        cgroupNs?.stop(),
      ]);
    },
  };
}

function refusal(cred: PeerCred): string {
  return `permission denied: only root may use the strata daemon (this client has uid ${cred.uid}, pid ${cred.pid})`;
}

function serveConnection(socket: Socket, opts: DaemonServerOptions & RunServiceOptions): void {
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
  let mode: 'unknown' | 'hook' | 'api' | 'run' = 'unknown';
  let chunks: Buffer[] = [];
  let size = 0;
  let apiQueue = Promise.resolve();
  socket.on('error', (err) => opts.logger.log('warn', `client connection (pid ${cred.pid}): ${err.message}`));

  const apiLines = (): void => {
    let buf = Buffer.concat(chunks);
    let nl: number;
    while ((nl = buf.indexOf(0x0a)) >= 0) {
      const line = buf.subarray(0, nl).toString('utf8');
      buf = buf.subarray(nl + 1);
      if (line.trim() === '') continue;
      apiQueue = apiQueue.then(async () => {
        const res: DaemonResponse = allowed
          ? await handleApiLine(line, opts.manager, opts.status)
          : { ok: false, error: { kind: 'PermissionDenied', message: refusal(cred) } };
        if (!socket.destroyed) socket.write(JSON.stringify(res) + '\n');
        if (!allowed) socket.end();
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
      if (head.length < 12 && !head.includes(0x0a)) return;
      mode = isHookRequest(head) ? 'hook' : isRunRequest(head) ? 'run' : 'api';
      if (mode === 'run') {
        socket.removeAllListeners('data');
        socket.removeAllListeners('end');
        if (!allowed) {
          socket.end(encodeExit(RUN_FAILED, `strata: ${refusal(cred)}`));
          return;
        }
        serveRunConnection(socket, head, cred.pid, opts);
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
    if (mode === 'hook' || (mode === 'unknown' && size > 0 && isHookRequest(Buffer.concat(chunks)))) {
      if (!allowed) {
        socket.end(encodeHookReply({ ok: false, message: refusal(cred) }));
        return;
      }
      void answerHook(socket, fd, Buffer.concat(chunks), opts);
    } else void apiQueue.then(() => socket.end());
  });
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
