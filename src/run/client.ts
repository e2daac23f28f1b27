// The Node front end of `strata run` (protocol: src/run/protocol.ts), for when the native
// one (native/front/strata.c) is not what the user called, or handed over to us because no daemon
// was running. Same mechanism as the native one: send the request, start the runtime the daemon
// describes with our stdio, forward signals, report how it ended, exit as the daemon says.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { constants } from 'node:os';

import {
  decodeRunMessages,
  encodeExited,
  encodeRunMessage,
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

/** Runs `strata run <argv>` through the daemon on socketPath; resolves with the exit code. */
export async function runThroughDaemon(socketPath: string, argv: string[]): Promise<number> {
  const socket = connect(socketPath);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', (err) =>
      reject(new UnavailableError(`cannot reach the strata daemon on ${socketPath}: ${err.message}`)),
    );
  });
  const reader = new MessageReader(socket);
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
    let end: RuntimeEnd;
    if (early) end = { kind: 'early', value: constants.signals[early] };
    else end = await runRuntime(x, socket, onEarly);
    socket.write(encodeExited(end));
    const last = await reader.next();
    if (!last || last.verb !== 'exit') {
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
    socket.destroy();
  }
}

function finish(exit: { code: number; message: string }): number {
  if (exit.message) process.stderr.write(`${exit.message}\n`);
  return exit.code;
}

function runRuntime(
  x: ExecInstruction,
  socket: Socket,
  onEarly: (sig: NodeJS.Signals) => void,
): Promise<RuntimeEnd> {
  return new Promise<RuntimeEnd>((resolve) => {
    const child = spawnRuntime(x);
    for (const sig of FORWARDED_SIGNALS) process.off(sig, onEarly);
    const forward = (sig: NodeJS.Signals): void => {
      child.kill(sig);
    };
    for (const sig of FORWARDED_SIGNALS) process.on(sig, forward);
    if (child.pid) socket.write(encodeRunMessage('started', [String(child.pid)]));
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
