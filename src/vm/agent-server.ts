// The agent's role of the protocol in TypeScript, for the VM host's clients: `strata run --vm`
// speaks to the VM host (host.ts) exactly as the host speaks to the guest (AgentSession), so one
// protocol and one client serve both hops. Each EXEC becomes a call to `onExec` with the process's
// stdio as Node streams under the client's credits.
import { PassThrough, Writable } from 'node:stream';

import {
  FRAME,
  FrameDecoder,
  KIND,
  ProtocolError,
  VM,
  channelOf,
  decodeExec,
  decodeHello,
  decodeResize,
  decodeU32,
  encodeExit,
  encodeFrame,
  encodeHello,
  encodeU32,
  sessionOf,
  splitChannel,
  type ExecSpec,
  type ExitStatus,
  type Frame,
} from './protocol.js';
import type { Duplex } from 'node:stream';

export interface ServedProcess {
  id: number;
  spec: ExecSpec;
  stdin: PassThrough;
  stdout: Writable;
  stderr: Writable;
  /** Set by onExec's owner: what SIGNAL and RESIZE from the client do. */
  onSignal?: (signo: number) => void;
  onResize?: (size: { rows: number; cols: number }) => void;
  started(pid: number): void;
  exit(status: ExitStatus): void;
  error(message: string): void;
}

export interface AgentServerOptions {
  info: string;
  onExec(proc: ServedProcess): void;
  /** The client went away (or broke the protocol) with these processes still running. */
  onClose?(running: ServedProcess[]): void;
}

interface Outbound {
  credit: number;
  waiting: (() => void)[];
}

export class AgentServer {
  private readonly stream: Duplex;
  private readonly decoder = new FrameDecoder();
  private readonly opts: AgentServerOptions;
  private session = 0;
  private readonly procs = new Map<number, { proc: ServedProcess; out: Outbound[] }>();
  private closed = false;

  constructor(stream: Duplex, opts: AgentServerOptions) {
    this.stream = stream;
    this.opts = opts;
    this.decoder.expect(0);
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', () => this.close());
    stream.on('close', () => this.close());
    stream.on('end', () => this.close());
  }

  get running(): number {
    return this.procs.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const running = [...this.procs.values()].map((p) => p.proc);
    this.procs.clear();
    for (const p of running) p.stdin.destroy();
    this.opts.onClose?.(running);
    this.stream.destroy();
  }

  private send(type: number, channel: number, payload?: Buffer): void {
    if (!this.closed) this.stream.write(encodeFrame(type, this.session, channel, payload));
  }

  private onData(chunk: Buffer): void {
    try {
      for (const f of this.decoder.push(chunk)) this.onFrame(f);
    } catch {
      // A ProtocolError, or a payload too short for its type: this client cannot be trusted.
      this.close();
    }
  }

  private onFrame(f: Frame): void {
    if (f.type === FRAME.hello) {
      const h = decodeHello(f.payload);
      this.session = sessionOf(h.nonce);
      // Every later frame must carry the new session.
      this.decoder.adopt(this.session);
      this.send(FRAME.hello, 0, encodeHello({ version: VM.version, nonce: h.nonce, info: this.opts.info }));
      return;
    }
    const { proc: id, kind } = splitChannel(f.channel);
    if (f.type === FRAME.exec) {
      if (this.procs.has(id) || id === 0) {
        this.send(FRAME.error, channelOf(id, KIND.fuse), Buffer.from(`process id ${id} is in use`));
        return;
      }
      this.startProcess(id, decodeExec(f.payload));
      return;
    }
    if (f.type === FRAME.ping) {
      this.send(FRAME.pong, f.channel, f.payload);
      return;
    }
    const entry = this.procs.get(id);
    if (!entry) return;
    const { proc, out } = entry;
    switch (f.type) {
      case FRAME.data:
        if (kind !== KIND.stdin) throw new ProtocolError('DATA from a client on a channel other than stdin');
        proc.stdin.write(f.payload, () => this.send(FRAME.credit, f.channel, encodeU32(f.payload.length)));
        return;
      case FRAME.eof:
        if (kind === KIND.stdin) proc.stdin.end();
        return;
      case FRAME.credit: {
        if (kind !== KIND.stdout && kind !== KIND.stderr)
          throw new ProtocolError('CREDIT for a channel that is not an output');
        const o = out[kind - KIND.stdout];
        o.credit += decodeU32('CREDIT', f.payload);
        while (o.credit > 0 && o.waiting.length > 0) o.waiting.shift()!();
        return;
      }
      case FRAME.signal:
        proc.onSignal?.(decodeU32('SIGNAL', f.payload));
        return;
      case FRAME.resize:
        proc.onResize?.(decodeResize(f.payload));
        return;
      default:
        throw new ProtocolError(`unknown frame type ${f.type}`);
    }
  }

  private output(id: number, kind: number, o: Outbound): Writable {
    return new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        let off = 0;
        const pump = () => {
          while (off < chunk.length) {
            if (o.credit <= 0) {
              o.waiting.push(pump);
              return;
            }
            const n = Math.min(chunk.length - off, o.credit, VM.maxPayload);
            this.send(FRAME.data, channelOf(id, kind), chunk.subarray(off, off + n));
            o.credit -= n;
            off += n;
          }
          cb();
        };
        if (this.closed) cb();
        else pump();
      },
      final: (cb) => {
        this.send(FRAME.eof, channelOf(id, kind));
        cb();
      },
    });
  }

  private startProcess(id: number, spec: ExecSpec): void {
    const out: Outbound[] = [
      { credit: VM.initialCredit, waiting: [] },
      { credit: VM.initialCredit, waiting: [] },
    ];
    const base = channelOf(id, KIND.fuse);
    let settled = false;
    const finish = () => {
      settled = true;
      this.procs.delete(id);
      proc.stdin.destroy();
    };
    const proc: ServedProcess = {
      id,
      spec,
      stdin: new PassThrough(),
      stdout: this.output(id, KIND.stdout, out[0]),
      stderr: this.output(id, KIND.stderr, out[1]),
      started: (pid) => {
        if (!settled) this.send(FRAME.started, base, encodeU32(pid));
      },
      exit: (status) => {
        if (settled) return;
        // EXIT once both outputs are flushed and at EOF (the client waits for all three).
        let pending = 2;
        const done = () => {
          if (--pending > 0) return;
          if (!this.procs.has(id)) return;
          this.send(FRAME.exit, base, encodeExit(status));
          finish();
        };
        for (const s of [proc.stdout, proc.stderr]) {
          if (s.writableFinished) done();
          else {
            s.once('finish', done);
            if (!s.writableEnded) s.end();
          }
        }
      },
      error: (message) => {
        if (settled) return;
        this.send(FRAME.error, base, Buffer.from(message, 'utf8'));
        finish();
      },
    };
    this.procs.set(id, { proc, out });
    this.opts.onExec(proc);
  }
}
