// ttrpc framing (github.com/containerd/ttrpc channel.go, v1.1): every message is a 10-byte header
// — body length (u32 big-endian), stream id (u32 big-endian; a client's ids are odd), message
// type (u8: 1 request, 2 response), flags (u8, 0 in containerd 1.6) — then a protobuf body of at
// most 4 MiB. Pure: bytes in, frames out; nothing here touches a socket (docs/architecture.md#containerd-shim).

export const HEADER_LENGTH = 10;
/** ttrpc's messageLengthMax: a larger body is refused (and skipped), not read. */
export const MAX_MESSAGE_LENGTH = 4 << 20;

export const MESSAGE_TYPE_REQUEST = 1;
export const MESSAGE_TYPE_RESPONSE = 2;

export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  body: Buffer;
}

/** A frame whose body was too large: its bytes were skipped; the peer is told, the stream goes on. */
export interface OversizedFrame {
  streamId: number;
  type: number;
  flags: number;
  oversized: number;
}

export function encodeFrame(streamId: number, type: number, body: Uint8Array, flags = 0): Buffer {
  if (body.length > MAX_MESSAGE_LENGTH) {
    throw new RangeError(
      `ttrpc message of ${body.length} bytes is over the ${MAX_MESSAGE_LENGTH}-byte limit`,
    );
  }
  const out = Buffer.allocUnsafe(HEADER_LENGTH + body.length);
  out.writeUInt32BE(body.length, 0);
  out.writeUInt32BE(streamId >>> 0, 4);
  out.writeUInt8(type, 8);
  out.writeUInt8(flags, 9);
  out.set(body, HEADER_LENGTH);
  return out;
}

/**
 * Splits a byte stream into frames. Bytes arrive in any chunking; push() returns the frames that
 * are complete. An oversized body is skipped as it streams by (never buffered) and reported once
 * its header is seen, so one bad message costs its sender an error, not the connection.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private size = 0;
  /** Bytes of an oversized body still to skip. */
  private skip = 0;

  push(data: Buffer): (Frame | OversizedFrame)[] {
    const out: (Frame | OversizedFrame)[] = [];
    if (this.skip > 0) {
      const n = Math.min(this.skip, data.length);
      this.skip -= n;
      data = data.subarray(n);
    }
    if (data.length > 0) {
      this.chunks.push(data);
      this.size += data.length;
    }
    for (;;) {
      if (this.size < HEADER_LENGTH) break;
      const head = this.peek(HEADER_LENGTH);
      const length = head.readUInt32BE(0);
      const streamId = head.readUInt32BE(4);
      const type = head.readUInt8(8);
      const flags = head.readUInt8(9);
      if (length > MAX_MESSAGE_LENGTH) {
        this.consume(HEADER_LENGTH);
        const n = Math.min(length, this.size);
        this.consume(n);
        this.skip = length - n;
        out.push({ streamId, type, flags, oversized: length });
        if (this.skip > 0) break;
        continue;
      }
      if (this.size < HEADER_LENGTH + length) break;
      this.consume(HEADER_LENGTH);
      const body = Buffer.from(this.peek(length)); // a copy: the chunks are reused
      this.consume(length);
      out.push({ streamId, type, flags, body });
    }
    return out;
  }

  /** Bytes buffered towards an incomplete frame. */
  get pending(): number {
    return this.size;
  }

  private peek(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    if (this.chunks[0].length < n) {
      const all = Buffer.concat(this.chunks);
      this.chunks = [all];
    }
    return this.chunks[0].subarray(0, n);
  }

  private consume(n: number): void {
    this.size -= n;
    while (n > 0) {
      const c = this.chunks[0];
      if (c.length <= n) {
        n -= c.length;
        this.chunks.shift();
      } else {
        this.chunks[0] = c.subarray(n);
        n = 0;
      }
    }
  }
}

export function isOversized(f: Frame | OversizedFrame): f is OversizedFrame {
  return 'oversized' in f;
}
