// The Node front end of `strata run` (protocol: src/run/protocol.ts), for when the native
// one (native/front/strata.c) is not what the user called, or handed over to us because no daemon
// was running. Same mechanism as the native one: send the request, start the runtime the daemon
// describes with our stdio, forward signals, report how it ended, exit as the daemon says; a
// daemon lost during the run is replaced by the next one ("resume", DaemonLink).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { constants } from 'node:os';

import {
  decodeRunMessages,
  encodeExited,
  encodeRunMessage,
  encodeResume,
  encodeRunRequest,
  parseExec,
  parseExit,
  type ExecInstruction,
  type RunMessage,
  type RuntimeEnd,
} from './protocol.js';
import { FailedPreconditionError, UnavailableError } from '../errors.js';
import { NATIVE_CONTRACT } from '../contract/generated/native-contract.js';
import { findExecutable } from './runtime.js';

/** SIGWINCH stays out: with a terminal the runtime is in the foreground process group and gets it
 * from the kernel itself. SIGUSR1 belongs to Node's inspector. */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = NATIVE_CONTRACT.run.forwardedSignals;

/** Reads the daemon's messages one at a time. */
class MessageReader {
  private buf: Buffer = Buffer.alloc(0);
  private queue: RunMessage[] = [];
  private waiting?: (m: RunMessage | undefined) => void;
  private closed = false;

  constructor(socket: Socket) {
    socket.on('data', (data: Buffer) => {
      const { messages, rest } = decodeRunMessages(Buffer.concat([this.buf, data]));
      this.buf = rest;
      this.queue.push(...messages);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined); // seen as the close that follows
  }

  private wake(): void {
    if (!this.waiting || (this.queue.length === 0 && !this.closed)) return;
    const w = this.waiting;
    this.waiting = undefined;
    w(this.queue.shift());
  }

  next(): Promise<RunMessage | undefined> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.wake();
    });
  }
}

function spawnRuntime(x: ExecInstruction): ReturnType<typeof spawn> {
  let [cmd, ...args] = x.argv;
  if (x.mntns) {
    // The native front end calls setns itself; Node cannot between fork and exec.
    const nsenter = findExecutable('nsenter');
    if (!nsenter)
      throw new FailedPreconditionError('running crun on this host needs nsenter(1) (util-linux)');
    args = [`--mount=${x.mntns}`, '--', cmd, ...args];
    cmd = nsenter;
  }
  return spawn(cmd, args, {
    cwd: x.cwd,
    stdio: [x.stdin === 'inherit' ? 'inherit' : 'ignore', 'inherit', 'inherit'],
    detached: x.pgrp === 'new',
  });
}

function connectTo(socketPath: string): Promise<Socket> {
  const socket = connect(socketPath);
  return new Promise<Socket>((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('error', (err) => {
      socket.destroy();
      reject(new UnavailableError(`cannot reach the strata daemon on ${socketPath}: ${err.message}`));
    });
  });
}

const RECONNECT_MS = NATIVE_CONTRACT.run.reconnectMs;
const RECONNECT_POLL_MS = NATIVE_CONTRACT.run.reconnectPollMs;

/**
 * The daemon a run talks to. A daemon lost during the run (kill -9, `strata daemon --upgrade`)
 * is replaced by the next one that answers, told with "resume" (src/run/protocol.ts) which
 * container this is, as the native front end does (native/front/strata.c).
 */
class DaemonLink {
  private retry?: NodeJS.Timeout;
  private runtimePid?: number;
  private ended = false;

  constructor(
    private readonly socketPath: string,
    private socket: Socket | undefined,
    public reader: MessageReader | undefined,
  ) {}

  /** From the exec message on: follow the daemon while the runtime runs. */
  follow(x: ExecInstruction): void {
    if (!x.id || !x.runDir || !this.socket) return;
    const watch = (socket: Socket): void => {
      socket.once('close', () => {
        if (this.socket !== socket || this.ended) return;
        this.socket = undefined;
        this.reader = undefined;
        const lostAt = Date.now();
        const attempt = (): void => {
          this.retry = undefined;
          if (this.ended) return;
          void this.resume(x).then((ok) => {
            if (ok) watch(this.socket!);
            else if (!this.ended)
              this.retry = setTimeout(attempt, Date.now() - lostAt < RECONNECT_MS ? RECONNECT_POLL_MS : 1000);
          });
        };
        attempt();
      });
    };
    watch(this.socket);
  }

  started(pid: number): void {
    this.runtimePid = pid;
    this.socket?.write(encodeRunMessage('started', [String(pid)]));
  }

  private async resume(x: ExecInstruction, end?: RuntimeEnd): Promise<boolean> {
    let socket: Socket;
    try {
      socket = await connectTo(this.socketPath);
    } catch {
      return false;
    }
    this.socket = socket;
    this.reader = new MessageReader(socket);
    socket.write(encodeResume({ id: x.id!, runDir: x.runDir!, runtimePid: this.runtimePid, end }));
    return true;
  }

  /** The daemon's answer to the runtime's end: from this daemon, or the next one that answers
   * within RECONNECT_MS. undefined: none did. */
  async finish(x: ExecInstruction, end: RuntimeEnd): Promise<RunMessage | undefined> {
    this.ended = true;
    clearTimeout(this.retry);
    if (this.socket && this.reader) {
      this.socket.write(encodeExited(end));
      const last = await this.reader.next();
      if (last?.verb === 'exit') return last;
    }
    if (!x.id || !x.runDir) return undefined;
    for (const until = Date.now() + RECONNECT_MS; Date.now() < until;) {
      this.socket?.destroy();
      if (await this.resume(x, end)) {
        const last = await this.reader!.next();
        if (last?.verb === 'exit') return last;
      }
      await new Promise((r) => setTimeout(r, RECONNECT_POLL_MS));
    }
    return undefined;
  }

  destroy(): void {
    this.ended = true;
    clearTimeout(this.retry);
    this.socket?.destroy();
  }
}

/** Runs `strata run <argv>` through the daemon on socketPath; resolves with the exit code. */
export async function runThroughDaemon(socketPath: string, argv: string[]): Promise<number> {
  const socket = await connectTo(socketPath);
  const reader = new MessageReader(socket);
  const link = new DaemonLink(socketPath, socket, reader);
  // Signals that arrive before the runtime exists end the run before anything starts.
  let early: NodeJS.Signals | undefined;
  const onEarly = (sig: NodeJS.Signals): void => {
    early ??= sig;
  };
  for (const sig of FORWARDED_SIGNALS) process.on(sig, onEarly);
  try {
    const env = Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
    socket.write(encodeRunRequest({ cwd: process.cwd(), argv, env }));
    const first = await reader.next();
    if (!first)
      throw new UnavailableError('the strata daemon closed the connection without answering (see its log)');
    if (first.verb === 'exit') return finish(parseExit(first));
    if (first.verb !== 'exec') {
      throw new UnavailableError(
        `the strata daemon answered "${first.verb}" to a run request it should handle`,
      );
    }
    const x = parseExec(first);
    link.follow(x);
    let end: RuntimeEnd;
    if (early) end = { kind: 'early', value: constants.signals[early] };
    else end = await runRuntime(x, link, onEarly);
    const last = await link.finish(x, end);
    if (!last) {
      // The runtime failed and never wrote the pid file: its hook found no daemon.
      if (end.kind === 'code' && end.value !== 0 && x.pidFile && !existsSync(x.pidFile)) {
        process.stderr.write(`strata: ${NATIVE_CONTRACT.run.lostBeforeStartMessage}\n`);
        return NATIVE_CONTRACT.exit.runFailed;
      }
      process.stderr.write(`strata: ${NATIVE_CONTRACT.run.lostMessage}\n`);
      return end.kind === 'code' ? end.value : 128 + end.value;
    }
    return finish(parseExit(last));
  } finally {
    for (const sig of FORWARDED_SIGNALS) process.off(sig, onEarly);
    link.destroy();
  }
}

function finish(exit: { code: number; message: string }): number {
  if (exit.message) process.stderr.write(`${exit.message}\n`);
  return exit.code;
}

function runRuntime(
  x: ExecInstruction,
  link: DaemonLink,
  onEarly: (sig: NodeJS.Signals) => void,
): Promise<RuntimeEnd> {
  return new Promise<RuntimeEnd>((resolve) => {
    const child = spawnRuntime(x);
    for (const sig of FORWARDED_SIGNALS) process.off(sig, onEarly);
    const forward = (sig: NodeJS.Signals): void => {
      child.kill(sig);
    };
    for (const sig of FORWARDED_SIGNALS) process.on(sig, forward);
    if (child.pid) link.started(child.pid);
    const done = (end: RuntimeEnd): void => {
      for (const sig of FORWARDED_SIGNALS) process.off(sig, forward);
      resolve(end);
    };
    child.once('error', (err) => {
      process.stderr.write(`strata: cannot start ${x.argv[0]}: ${err.message}\n`);
      done({ kind: 'code', value: 127 });
    });
    child.once('exit', (code, signal) =>
      done(
        code !== null
          ? { kind: 'code', value: code }
          : { kind: 'signal', value: constants.signals[signal ?? 'SIGKILL'] },
      ),
    );
  });
}
