// The two questions the Task service asks containerd on Create, over containerd's own gRPC socket
// (unary gRPC on HTTP/2, node:http2 over the unix socket, one session per address kept open):
// Containers.Get (which image a container was made from) and Images.Get (that image's target
// descriptor). A `ctr` spawn costs 30-150 ms here; a call on an open session ~1 ms. The messages
// are generated from containerd 1.6's api/services/{containers,images}/v1/*.proto
// (npm run gen:proto); answers are bounded (MAX_RESPONSE) before they are decoded, and what is
// read from them is checked.
import { connect as netConnect } from 'node:net';
import { connect as h2Connect, constants, type ClientHttp2Session } from 'node:http2';
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';

import { InvalidArgumentError, NotFoundError, UnavailableError } from '../errors.js';
import {
  Containers,
  GetContainerRequestSchema,
  GetContainerResponseSchema,
} from '../proto/generated/github.com/containerd/containerd/api/services/containers/v1/containers_pb.js';
import {
  GetImageRequestSchema,
  GetImageResponseSchema,
  Images,
} from '../proto/generated/github.com/containerd/containerd/api/services/images/v1/images_pb.js';

/** The largest response accepted (a container record carries its whole OCI spec). */
export const MAX_RESPONSE = 4 << 20;
const CALL_TIMEOUT_MS = 5000;
const GRPC_NOT_FOUND = 5;

export interface ImageTarget {
  mediaType: string;
  digest: string;
  size: number;
}

/** A gRPC message frame: 1 byte compressed flag (0), 4 bytes big-endian length, the message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** The message of a unary gRPC response body (exactly one uncompressed frame). */
export function grpcUnframe(body: Buffer): Uint8Array {
  if (body.length < 5) throw new InvalidArgumentError('containerd sent a gRPC response without a message');
  if (body[0] !== 0) throw new InvalidArgumentError('containerd sent a compressed gRPC message');
  const len = body.readUInt32BE(1);
  if (len !== body.length - 5) throw new InvalidArgumentError('containerd sent a malformed gRPC frame');
  return body.subarray(5);
}

/** Decodes an answer; a malformed one is InvalidArgument naming what it should have been. */
function decode<D extends DescMessage>(schema: D, bytes: Uint8Array): MessageShape<D> {
  try {
    // Unknown fields (a newer containerd's) are skipped, not kept.
    return fromBinary(schema, bytes, { readUnknownFields: false });
  } catch (err) {
    throw new InvalidArgumentError(
      `containerd sent a malformed ${schema.typeName}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/** GetContainerResponse -> the container's image name ('' when none). */
export function decodeContainerImage(bytes: Uint8Array): string {
  return decode(GetContainerResponseSchema, bytes).container?.image ?? '';
}

/** GetImageResponse -> the image's target descriptor, or undefined when it names none. */
export function decodeImageTarget(bytes: Uint8Array): ImageTarget | undefined {
  const target = decode(GetImageResponseSchema, bytes).image?.target;
  if (!target) return undefined;
  if (target.size < 0n || target.size > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidArgumentError(`containerd sent an image target of size ${target.size}`);
  }
  return { mediaType: target.mediaType, digest: target.digest, size: Number(target.size) };
}

/** The gRPC path of a method: /package.Service/Method. */
function path(service: { typeName: string }, method: { name: string }): string {
  return `/${service.typeName}/${method.name}`;
}

export class ContainerdGrpc {
  private session: ClientHttp2Session | undefined;

  constructor(readonly address: string) {}

  private open(): ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const s = h2Connect('http://containerd', { createConnection: () => netConnect(this.address) });
    s.on('error', () => s.destroy());
    s.on('close', () => {
      if (this.session === s) this.session = undefined;
    });
    s.unref(); // an idle session must not keep the daemon alive
    this.session = s;
    return s;
  }

  /** One unary call; rejects with NotFoundError (gRPC NotFound) or UnavailableError. */
  call(
    namespace: string,
    path: string,
    message: Uint8Array,
    timeoutMs = CALL_TIMEOUT_MS,
  ): Promise<Uint8Array> {
    const what = `containerd at ${this.address}: ${path}`;
    return new Promise((resolve, reject) => {
      let session: ClientHttp2Session;
      try {
        session = this.open();
      } catch (err) {
        reject(new UnavailableError(`${what}: ${(err as Error).message}`, { cause: err }));
        return;
      }
      const req = session.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
        'containerd-namespace': namespace,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      let status: string | undefined;
      let statusMessage = '';
      const onHeaders = (h: Record<string, unknown>): void => {
        if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
        if (h['grpc-message'] !== undefined) statusMessage = decodeURIComponent(String(h['grpc-message']));
      };
      req.on('response', onHeaders);
      req.on('trailers', onHeaders);
      req.setTimeout(timeoutMs, () => {
        req.close(constants.NGHTTP2_CANCEL);
        reject(new UnavailableError(`${what}: no answer within ${timeoutMs} ms`));
      });
      req.on('data', (d: Buffer) => {
        size += d.length;
        if (size > MAX_RESPONSE) {
          req.close(constants.NGHTTP2_CANCEL);
          reject(new InvalidArgumentError(`${what}: response larger than ${MAX_RESPONSE} bytes`));
        } else chunks.push(d);
      });
      req.on('error', (err) => reject(new UnavailableError(`${what}: ${err.message}`, { cause: err })));
      req.on('end', () => {
        if (status === String(GRPC_NOT_FOUND)) reject(new NotFoundError(`${what}: ${statusMessage}`));
        else if (status !== '0') {
          reject(new UnavailableError(`${what}: gRPC status ${status ?? 'missing'} ${statusMessage}`.trim()));
        } else {
          try {
            resolve(grpcUnframe(Buffer.concat(chunks)));
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        }
      });
      req.end(grpcFrame(message));
    });
  }

  /** The image name of container `id` ('' when it was made from none, e.g. `ctr run --rootfs`). */
  async containerImage(namespace: string, id: string): Promise<string> {
    const res = await this.call(
      namespace,
      path(Containers, Containers.method.get),
      toBinary(GetContainerRequestSchema, create(GetContainerRequestSchema, { id })),
    );
    return decodeContainerImage(res);
  }

  /** The target descriptor containerd records for image `name`. */
  async imageTarget(namespace: string, name: string): Promise<ImageTarget> {
    const res = await this.call(
      namespace,
      path(Images, Images.method.get),
      toBinary(GetImageRequestSchema, create(GetImageRequestSchema, { name })),
    );
    const t = decodeImageTarget(res);
    if (!t || !t.digest || !t.mediaType) {
      throw new InvalidArgumentError(`containerd at ${this.address}: image ${name} has no target descriptor`);
    }
    return t;
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }
}
