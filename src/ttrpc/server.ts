// A ttrpc server on one connection (containerd's shim client, or any ttrpc peer). Every request
// runs on its own as soon as its frame is complete: containerd sends Wait, which long-polls, and
// then Start on the same connection, so requests are never serialised. Responses go out in the
// order they finish, each on its request's stream id.
//
// Hostile input: a body over 4 MiB is skipped as it arrives and answered ResourceExhausted; a body
// that is not a ttrpc Request, a payload that is not the method's message, an even (server-side)
// stream id or an unknown method gets an error status on its stream; the connection and every
// other request go on. A peer that disconnects mid-request aborts its requests' signal and their
// answers are dropped. Nothing a peer sends can throw out of this module.
import type { Socket } from 'node:net';

import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';

import { RequestSchema, ResponseSchema } from '../proto/generated/ttrpc_pb.js';
import {
  encodeFrame,
  FrameDecoder,
  isOversized,
  MAX_MESSAGE_LENGTH,
  MESSAGE_TYPE_REQUEST,
  MESSAGE_TYPE_RESPONSE,
} from './frame.js';
import { Code, TtrpcError } from './status.js';

export interface CallContext {
  service: string;
  method: string;
  /** Request metadata (ttrpc KeyValue pairs), each key's values in order. */
  metadata: Map<string, string[]>;
  /** Aborted when the peer disconnects or the request's timeout_nano passes. */
  signal: AbortSignal;
}

/** One method: the request payload in, the response payload out; throw to answer with a status. */
export type Handler = (payload: Uint8Array, ctx: CallContext) => Promise<Uint8Array>;

export interface Status {
  code: number;
  message: string;
}

export interface ServeOptions {
  /** "service/method" (e.g. "containerd.task.v2.Task/Create") → handler. */
  handlers: ReadonlyMap<string, Handler>;
  /** A thrown error → its status. Default: a TtrpcError's own code, Unknown for anything else. */
  toStatus?: (err: unknown) => Status;
  /** Where protocol trouble is reported (a malformed frame, a handler that threw a non-status). */
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

export interface TtrpcConnection {
  /** Requests whose handler has not finished. */
  readonly inFlight: number;
  close(): void;
}

function defaultStatus(err: unknown): Status {
  if (err instanceof TtrpcError) return { code: err.code, message: err.message };
  return { code: Code.Unknown, message: err instanceof Error ? err.message : String(err) };
}

export function methodKey(service: string, method: string): string {
  return `${service}/${method}`;
}

/** Serves ttrpc on `socket`; `head` holds bytes already read from it (protocol sniffing). */
export function serveTtrpc(socket: Socket, opts: ServeOptions, head?: Buffer): TtrpcConnection {
  const decoder = new FrameDecoder();
  const toStatus = opts.toStatus ?? defaultStatus;
  const log = opts.log ?? (() => undefined);
  const gone = new AbortController();
  let inFlight = 0;

  const respond = (streamId: number, status: Status, payload?: Uint8Array): void => {
    if (socket.destroyed || gone.signal.aborted) return;
    let body = toBinary(
      ResponseSchema,
      create(ResponseSchema, {
        status: { code: status.code, message: status.message },
        payload: payload ?? new Uint8Array(0),
      }),
    );
    if (body.length > MAX_MESSAGE_LENGTH) {
      body = toBinary(
        ResponseSchema,
        create(ResponseSchema, {
          status: {
            code: Code.ResourceExhausted,
            message: `response of ${body.length} bytes is over the ttrpc limit`,
          },
        }),
      );
    }
    socket.write(encodeFrame(streamId, MESSAGE_TYPE_RESPONSE, body));
  };

  const handle = async (streamId: number, body: Buffer): Promise<void> => {
    let req;
    try {
      req = fromBinary(RequestSchema, body);
    } catch (err) {
      respond(streamId, {
        code: Code.InvalidArgument,
        message: `malformed ttrpc request: ${(err as Error).message}`,
      });
      return;
    }
    const handler = opts.handlers.get(methodKey(req.service, req.method));
    if (!handler) {
      respond(streamId, {
        code: Code.Unimplemented,
        message: `${req.service}/${req.method} is not implemented`,
      });
      return;
    }
    const metadata = new Map<string, string[]>();
    for (const kv of req.metadata) metadata.set(kv.key, [...(metadata.get(kv.key) ?? []), kv.value]);
    const signals = [gone.signal];
    if (req.timeoutNano > 0n) signals.push(AbortSignal.timeout(Number(req.timeoutNano / 1_000_000n)));
    const ctx: CallContext = {
      service: req.service,
      method: req.method,
      metadata,
      signal: AbortSignal.any(signals),
    };
    inFlight++;
    try {
      const out = await handler(req.payload, ctx);
      respond(streamId, { code: Code.OK, message: '' }, out);
    } catch (err) {
      const status = toStatus(err);
      if (status.code === Code.Unknown || status.code === Code.Internal) {
        log(
          'error',
          `${req.service}/${req.method}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
        );
      }
      respond(streamId, status);
    } finally {
      inFlight--;
    }
  };

  const onData = (data: Buffer): void => {
    for (const f of decoder.push(data)) {
      if (isOversized(f)) {
        log(
          'warn',
          `ttrpc: refused a ${f.oversized}-byte message on stream ${f.streamId} (limit ${MAX_MESSAGE_LENGTH})`,
        );
        if (f.type === MESSAGE_TYPE_REQUEST) {
          respond(f.streamId, {
            code: Code.ResourceExhausted,
            message: `message of ${f.oversized} bytes is over the ttrpc limit of ${MAX_MESSAGE_LENGTH}`,
          });
        }
        continue;
      }
      if (f.type !== MESSAGE_TYPE_REQUEST) {
        log(
          'warn',
          `ttrpc: ignored a message of type ${f.type} on stream ${f.streamId} (a server takes requests)`,
        );
        continue;
      }
      if (f.streamId % 2 === 0) {
        respond(f.streamId, {
          code: Code.InvalidArgument,
          message: `stream id ${f.streamId} is even: client streams are odd`,
        });
        continue;
      }
      void handle(f.streamId, f.body);
    }
  };

  socket.on('data', onData);
  socket.on('error', (err) => log('warn', `ttrpc connection: ${err.message}`));
  socket.once('close', () => gone.abort(new TtrpcError(Code.Canceled, 'the client disconnected')));
  socket.on('end', () => socket.end());
  if (head && head.length > 0) onData(head);

  return {
    get inFlight() {
      return inFlight;
    },
    close() {
      socket.destroy();
    },
  };
}

/** The implementation of a generated service: each method takes its request message and returns
 * (the fields of) its response message. Methods left out answer Unimplemented. */
export type ServiceImpl<S extends GenServiceMethods> = {
  [K in keyof S]?: (
    req: MessageShape<S[K]['input']>,
    ctx: CallContext,
  ) => Promise<MessageInitShape<S[K]['output']>>;
};

/** Adds `impl`'s methods of `service` to `into`, keyed as ttrpc names them ("pkg.Service/Method"). */
export function addService<S extends GenServiceMethods>(
  into: Map<string, Handler>,
  service: GenService<S>,
  impl: ServiceImpl<S>,
): Map<string, Handler> {
  for (const m of service.methods) {
    const fn = impl[m.localName as keyof S];
    if (!fn) continue;
    const input = m.input as DescMessage;
    const output = m.output as DescMessage;
    into.set(methodKey(service.typeName, m.name), async (payload, ctx) => {
      let req;
      try {
        req = fromBinary(input, payload);
      } catch (err) {
        throw new TtrpcError(Code.InvalidArgument, `malformed ${input.typeName}: ${(err as Error).message}`);
      }
      // The generic shapes are checked where ServiceImpl is written; here they are one message type.
      const res = await (fn as (r: unknown, c: CallContext) => Promise<MessageInitShape<DescMessage>>)(
        req,
        ctx,
      );
      return toBinary(output, create(output, res));
    });
  }
  return into;
}
