// The host's end of one connection to the guest agent (native/vm/strata-agent.c), over any byte
// stream: a qemu virtio-serial chardev socket, a vfkit vsock socket, or a pipe to an agent built
// for the host (tests). HELLO with a fresh nonce, then processes: EXEC, stdio relayed under
// credits, the process's FUSE requests answered by a handler of src/mount (the same FuseProtocol
// that serves /dev/fuse on the host), EXIT. When the stream ends every running process fails.
import { randomBytes } from 'node:crypto';
import type { Duplex, Readable, Writable } from 'node:stream';

import { FailedPreconditionError, UnavailableError } from '../errors.js';
import {
  FRAME,
  FrameDecoder,
  KIND,
  ProtocolError,
  VM,
  channelOf,
  decodeExit,
  decodeHello,
  decodeU32,
  encodeExec,
  encodeFrame,
  encodeHello,
  encodeResize,
  encodeU32,
  sessionOf,
  splitChannel,
  encodeTreeChunks,
  type ExecSpec,
  type ExecTree,
  type ExitStatus,
  type Frame,
  type Hello,
} from './protocol.js';

/** What answers the process's FUSE requests: src/mount/fuse/protocol.ts FuseProtocol fits. */
export interface FuseRelayHandler {
  handle(req: Buffer): Promise<Buffer | null> | Buffer | null;
}

export interface ProcessIo {
  stdin?: Readable | null;
  stdout: Writable;
  stderr: Writable;
  fuse?: FuseRelayHandler;
  /** Counts the relayed FUSE requests by opcode, and the host's time answering them. */
  fuseStats?: FuseRelayStats;
  /** The root's tree, for the agent to answer its metadata requests itself (guest-side cache). */
  tree?: TreeSource;
}

/** An image's tree index and how to answer from it (src/mount/fs/native-fast-path.ts's inputs). */
export interface TreeSource {
  /** Names the index (its digest): sent once per session, then named by id. */
  key: string;
  index: Buffer;
  answers: Omit<ExecTree, 'id'>;
}

/** Where a --vm container's file system time goes (bench:vm, $STRATA_VM_FUSE_STATS). */
export class FuseRelayStats {
  readonly byOpcode = new Map<number, { count: number; hostMs: number }>();
  first = 0;
  last = 0;

  record(opcode: number, hostMs: number): void {
    const now = performance.now();
    if (this.first === 0) this.first = now;
    this.last = now;
    const e = this.byOpcode.get(opcode) ?? { count: 0, hostMs: 0 };
    e.count += 1;
    e.hostMs += hostMs;
    this.byOpcode.set(opcode, e);
  }

  get count(): number {
    let n = 0;
    for (const e of this.byOpcode.values()) n += e.count;
    return n;
  }

  /** "N requests in W ms (H ms answering on the host): opcode N, ..." */
  summary(): string {
    let host = 0;
    for (const e of this.byOpcode.values()) host += e.hostMs;
    const parts = [...this.byOpcode.entries()]
      .sort((a, b) => b[1].count - a[1].count)
      .map(([op, e]) => `op${op} ${e.count}`);
    return (
      `${this.count} FUSE requests over ${(this.last - this.first).toFixed(0)} ms ` +
      `(${host.toFixed(0)} ms answering on the host): ${parts.join(', ')}`
    );
  }
}

export interface AgentSessionOptions {
  nonce?: bigint;
  helloTimeoutMs?: number;
  /** The version we claim (tests of a mismatch). */
  version?: number;
}

interface Proc {
  id: number;
  io: ProcessIo;
  started: { resolve(pid: number): void; reject(e: Error): void };
  exited: { resolve(s: ExitStatus): void; reject(e: Error): void };
  status?: ExitStatus;
  openOutputs: number;
  stdinCredit: number;
  pendingStdin: Buffer[];
  stdinEnded: boolean;
  done: boolean;
}

export interface AgentProcess {
  id: number;
  /** The process's pid in the guest, once it runs. */
  pid: Promise<number>;
  /** After EXIT and both output streams' EOF; rejects when the agent fails to start it or goes away. */
  exited: Promise<ExitStatus>;
  signal(signo: number): void;
  resize(size: { rows: number; cols: number }): void;
}

const HELLO_REPEAT_MS = 500;

function deferred<T>(): { promise: Promise<T>; resolve(v: T): void; reject(e: Error): void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export class AgentSession {
  readonly nonce: bigint;
  readonly session: number;
  /** The agent's HELLO, once start() resolved. */
  hello?: Hello;
  private readonly stream: Duplex;
  private readonly decoder = new FrameDecoder();
  private readonly procs = new Map<number, Proc>();
  private nextId = 1;
  private closedWith?: Error;
  private helloWaiter?: { resolve(h: Hello): void; reject(e: Error): void };
  private readonly version: number;
  private readonly helloTimeoutMs: number;
  private readonly closeListeners: ((err: Error) => void)[] = [];
  /** Tree indexes the agent holds (key -> id), and their bytes (VM.tree.budgetBytes). */
  private readonly trees = new Map<string, number>();
  private treeBytes = 0;
  private nextTree = 1;

  constructor(stream: Duplex, opts: AgentSessionOptions = {}) {
    this.stream = stream;
    this.nonce = opts.nonce ?? randomBytes(8).readBigUInt64LE(0);
    this.session = sessionOf(this.nonce);
    this.version = opts.version ?? VM.version;
    this.helloTimeoutMs = opts.helloTimeoutMs ?? VM.helloTimeoutMs;
    this.decoder.expect(this.session);
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (err) => this.fail(new UnavailableError(`the VM agent went away (${err.message})`)));
    stream.on('close', () => this.fail(new UnavailableError('the VM agent went away')));
    stream.on('end', () => this.fail(new UnavailableError('the VM agent went away')));
  }

  get isOpen(): boolean {
    return this.closedWith === undefined;
  }

  get running(): number {
    return this.procs.size;
  }

  /** The id the next exec() gets (the guest names its container after it). */
  get nextProcessId(): number {
    return this.nextId;
  }

  /** Called once when the connection ends, with why. */
  onClose(fn: (err: Error) => void): void {
    if (this.closedWith) fn(this.closedWith);
    else this.closeListeners.push(fn);
  }

  /** Sends HELLO and waits for the agent's; a version mismatch or silence is an error. */
  start(): Promise<Hello> {
    return new Promise<Hello>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          this.fail(new UnavailableError(`the VM agent did not say hello within ${this.helloTimeoutMs} ms`)),
        this.helloTimeoutMs,
      );
      this.helloWaiter = {
        resolve: (h) => {
          clearTimeout(timer);
          resolve(h);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      // Repeated until answered: bytes written before the guest opened its port may be lost.
      const hello = encodeHello({ version: this.version, nonce: this.nonce, info: '' });
      const again = setInterval(() => this.send(FRAME.hello, 0, hello, 0), HELLO_REPEAT_MS);
      const stop = () => clearInterval(again);
      this.helloWaiter.resolve = ((resolve0) => (h: Hello) => (stop(), resolve0(h)))(
        this.helloWaiter.resolve,
      );
      this.helloWaiter.reject = ((reject0) => (e: Error) => (stop(), reject0(e)))(this.helloWaiter.reject);
      this.send(FRAME.hello, 0, hello, 0);
    });
  }

  exec(spec: ExecSpec, io: ProcessIo): AgentProcess {
    const id = this.nextId++;
    const started = deferred<number>();
    const exited = deferred<ExitStatus>();
    started.promise.catch(() => undefined);
    exited.promise.catch(() => undefined);
    const proc: Proc = {
      id,
      io,
      started,
      exited,
      openOutputs: 2,
      stdinCredit: VM.initialCredit,
      pendingStdin: [],
      stdinEnded: false,
      done: false,
    };
    const base = channelOf(id, KIND.fuse);
    const handle: AgentProcess = {
      id,
      pid: started.promise,
      exited: exited.promise,
      signal: (signo) => this.send(FRAME.signal, 0, encodeU32(signo), base),
      resize: (size) => this.send(FRAME.resize, 0, encodeResize(size), base),
    };
    if (this.closedWith) {
      proc.started.reject(this.closedWith);
      proc.exited.reject(this.closedWith);
      return handle;
    }
    this.procs.set(id, proc);
    const tree = io.tree && this.treeFor(io.tree);
    this.send(FRAME.exec, 0, encodeExec(tree ? { ...spec, tree } : spec), base);
    // Without stdin the process reads EOF at once (docker's behaviour without -i).
    if (!io.stdin) this.send(FRAME.eof, 0, Buffer.alloc(0), channelOf(id, KIND.stdin));
    this.pumpStdin(proc);
    return handle;
  }

  /** The tree's record for an EXEC, sending the index first when the agent does not hold it;
   * undefined (every request relayed) when it would exceed the session's budget. */
  private treeFor(src: TreeSource): ExecTree | undefined {
    let id = this.trees.get(src.key);
    if (id === undefined) {
      if (src.index.length > VM.tree.maxBytes || this.treeBytes + src.index.length > VM.tree.budgetBytes)
        return undefined;
      id = this.nextTree++;
      for (const chunk of encodeTreeChunks(id, src.index)) this.send(FRAME.tree, 0, chunk, 0);
      this.trees.set(src.key, id);
      this.treeBytes += src.index.length;
    }
    return { ...src.answers, id };
  }

  /** Asks the agent (as the guest's init) to power the guest off: SIGNAL on the control channel. */
  powerOff(): void {
    if (this.hello) this.send(FRAME.signal, 0, encodeU32(15), 0);
  }

  /** Ends the connection from our side; running processes fail. */
  close(): void {
    this.fail(new UnavailableError('the VM agent connection was closed'));
    this.stream.destroy();
  }

  private send(type: number, _flags: number, payload: Buffer, channel: number): void {
    if (this.closedWith) return;
    this.stream.write(encodeFrame(type, type === FRAME.hello ? 0 : this.session, channel, payload));
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      this.stream.destroy();
      return;
    }
    for (const f of frames) {
      try {
        this.onFrame(f);
      } catch (err) {
        this.fail(err instanceof ProtocolError ? err : new ProtocolError((err as Error).message));
        this.stream.destroy();
        return;
      }
    }
  }

  private onFrame(f: Frame): void {
    if (f.type === FRAME.hello) {
      const h = decodeHello(f.payload);
      if (h.nonce !== this.nonce) throw new ProtocolError('HELLO answers another session');
      if (h.version !== this.version) {
        const err = new FailedPreconditionError(
          `the VM agent speaks protocol version ${h.version}, strata speaks ${this.version}: rebuild the VM image (scripts/build-vm-image.sh)`,
          { op: 'vm-hello' },
        );
        this.fail(err);
        this.stream.destroy();
        return;
      }
      this.hello = h;
      this.helloWaiter?.resolve(h);
      this.helloWaiter = undefined;
      return;
    }
    if (!this.hello) throw new ProtocolError(`frame type ${f.type} before HELLO`);
    if (f.type === FRAME.pong || f.type === FRAME.ping) return;
    const { proc: id, kind } = splitChannel(f.channel);
    const proc = this.procs.get(id);
    if (!proc) return; // a process that is already gone: late output or a late FUSE request
    switch (f.type) {
      case FRAME.started:
        proc.started.resolve(decodeU32('STARTED', f.payload));
        return;
      case FRAME.error: {
        const err = new FailedPreconditionError(`in the VM: ${f.payload.toString('utf8')}`, {
          op: 'vm-exec',
        });
        this.finish(proc, err);
        return;
      }
      case FRAME.exit:
        proc.status = decodeExit(f.payload);
        this.maybeDone(proc);
        return;
      case FRAME.credit:
        if (kind !== KIND.stdin) throw new ProtocolError('CREDIT for a channel that is not stdin');
        proc.stdinCredit += decodeU32('CREDIT', f.payload);
        this.pumpStdin(proc);
        return;
      case FRAME.eof:
        if (kind === KIND.stdout || kind === KIND.stderr) {
          proc.openOutputs -= 1;
          this.maybeDone(proc);
        }
        return;
      case FRAME.data:
        this.onChannelData(proc, kind, f);
        return;
      default:
        throw new ProtocolError(`unknown frame type ${f.type}`);
    }
  }

  private onChannelData(proc: Proc, kind: number, f: Frame): void {
    if (kind === KIND.stdout || kind === KIND.stderr) {
      const out = kind === KIND.stdout ? proc.io.stdout : proc.io.stderr;
      const n = f.payload.length;
      // Credit goes back once the bytes left our hands: a slow reader slows the guest process.
      out.write(f.payload, () => this.send(FRAME.credit, 0, encodeU32(n), f.channel));
      return;
    }
    if (kind === KIND.fuse) {
      const handler = proc.io.fuse;
      if (!handler) throw new ProtocolError('a FUSE request for a process without a FUSE root');
      const stats = proc.io.fuseStats;
      const t0 = stats ? performance.now() : 0;
      const reply = handler.handle(f.payload);
      const answer = (r: Buffer | null) => {
        if (stats && f.payload.length >= 8) stats.record(f.payload.readUInt32LE(4), performance.now() - t0);
        if (r) this.send(FRAME.data, 0, r, f.channel);
      };
      if (reply instanceof Promise) reply.then(answer, () => undefined);
      else answer(reply);
      return;
    }
    throw new ProtocolError('DATA on a stdin channel from the guest');
  }

  private pumpStdin(proc: Proc): void {
    const stdin = proc.io.stdin;
    if (!stdin || proc.done) return;
    if (!proc.stdinEnded && proc.pendingStdin.length === 0 && !stdin.listenerCount('data')) {
      stdin.on('data', (chunk: Buffer | string) => {
        proc.pendingStdin.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
        this.pumpStdin(proc);
      });
      stdin.on('end', () => {
        proc.stdinEnded = true;
        this.pumpStdin(proc);
      });
    }
    const channel = channelOf(proc.id, KIND.stdin);
    while (proc.pendingStdin.length > 0 && proc.stdinCredit > 0) {
      const head = proc.pendingStdin[0];
      const n = Math.min(head.length, proc.stdinCredit, VM.maxPayload);
      this.send(FRAME.data, 0, head.subarray(0, n), channel);
      proc.stdinCredit -= n;
      if (n === head.length) proc.pendingStdin.shift();
      else proc.pendingStdin[0] = head.subarray(n);
    }
    if (proc.pendingStdin.length > 0) stdin.pause();
    else if (proc.stdinEnded) {
      this.send(FRAME.eof, 0, Buffer.alloc(0), channel);
      proc.stdinEnded = false; // sent once
      proc.io.stdin = null;
    } else stdin.resume();
  }

  private maybeDone(proc: Proc): void {
    if (proc.status && proc.openOutputs <= 0) this.finish(proc);
  }

  private finish(proc: Proc, err?: Error): void {
    if (proc.done) return;
    proc.done = true;
    this.procs.delete(proc.id);
    proc.io.stdin?.pause();
    if (err) {
      proc.started.reject(err);
      proc.exited.reject(err);
    } else {
      proc.started.resolve(0);
      proc.exited.resolve(proc.status!);
    }
  }

  private fail(err: Error): void {
    if (this.closedWith) return;
    this.closedWith = err;
    this.helloWaiter?.reject(err);
    this.helloWaiter = undefined;
    for (const proc of [...this.procs.values()]) this.finish(proc, err);
    for (const fn of this.closeListeners.splice(0)) fn(err);
  }
}
