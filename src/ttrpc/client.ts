// A ttrpc client on one unix socket connection: odd stream ids, any number of calls in flight,
// each answered by the response on its stream. Used for containerd's Events service on
// $TTRPC_ADDRESS (the caller retries: src/shim/events.ts) and by the tests.
import { connect, type Socket } from 'node:net';

import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from '@bufbuild/protobuf';

import { RequestSchema, ResponseSchema } from '../proto/generated/ttrpc_pb.js';
import {
  encodeFrame,
  FrameDecoder,
  isOversized,
  MESSAGE_TYPE_REQUEST,
  MESSAGE_TYPE_RESPONSE,
} from './frame.js';
import { Code, TtrpcError } from './status.js';

interface Pending {
  resolve: (payload: Uint8Array) => void;
  reject: (err: Error) => void;
  timer?: NodeJS.Timeout;
}

export interface CallOptions {
  timeoutMs?: number;
  metadata?: Record<string, string>;
}

export class TtrpcClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly decoder = new FrameDecoder();
  private closedWith?: Error;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (err) => this.fail(err));
    socket.once('close', () => this.fail(new TtrpcError(Code.Unavailable, 'ttrpc connection closed')));
  }

  /** Connects to a unix socket path (a "unix://" prefix is accepted). */
  static connect(address: string, timeoutMs = 5000): Promise<TtrpcClient> {
    const path = address.startsWith('unix://') ? address.slice('unix://'.length) : address;
    return new Promise((resolve, reject) => {
      const s = connect(path);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new TtrpcError(Code.DeadlineExceeded, `connecting to ${path} took over ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(new TtrpcClient(s));
      });
    });
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  /** One raw call: the request payload in, the response payload out; a non-OK status throws. */
  callRaw(service: string, method: string, payload: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = this.nextId;
    this.nextId = (this.nextId + 2) >>> 0 || 1;
    const body = toBinary(
      RequestSchema,
      create(RequestSchema, {
        service,
        method,
        payload,
        timeoutNano: opts.timeoutMs ? BigInt(opts.timeoutMs) * 1_000_000n : 0n,
        metadata: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
      }),
    );
    return new Promise((resolve, reject) => {
      const p: Pending = { resolve, reject };
      if (opts.timeoutMs) {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(
            new TtrpcError(Code.DeadlineExceeded, `${service}/${method}: no answer in ${opts.timeoutMs} ms`),
          );
        }, opts.timeoutMs);
      }
      this.pending.set(id, p);
      this.socket.write(encodeFrame(id, MESSAGE_TYPE_REQUEST, body));
    });
  }

  /** A typed call with generated message schemas. */
  async call<I extends DescMessage, O extends DescMessage>(
    service: string,
    method: string,
    input: I,
    req: MessageInitShape<I>,
    output: O,
    opts?: CallOptions,
  ): Promise<MessageShape<O>> {
    const out = await this.callRaw(service, method, toBinary(input, create(input, req)), opts);
    return fromBinary(output, out);
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(data: Buffer): void {
    let frames;
    try {
      frames = this.decoder.push(data);
    } catch (err) {
      this.fail(err as Error);
      this.socket.destroy();
      return;
    }
    for (const f of frames) {
      const p = this.pending.get(f.streamId);
      if (!p || f.type !== MESSAGE_TYPE_RESPONSE) continue;
      this.pending.delete(f.streamId);
      clearTimeout(p.timer);
      if (isOversized(f)) {
        p.reject(
          new TtrpcError(Code.ResourceExhausted, `response of ${f.oversized} bytes is over the ttrpc limit`),
        );
        continue;
      }
      try {
        const res = fromBinary(ResponseSchema, f.body);
        const code = res.status?.code ?? 0;
        if (code !== Code.OK) p.reject(new TtrpcError(code, res.status?.message ?? ''));
        else p.resolve(res.payload);
      } catch (err) {
        p.reject(new TtrpcError(Code.Internal, `malformed ttrpc response: ${(err as Error).message}`));
      }
    }
  }

  private fail(err: Error): void {
    this.closedWith ??= err;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }
}
