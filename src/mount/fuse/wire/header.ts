// struct fuse_in_header / fuse_out_header, and the NUL-terminated names that follow some requests.

export const FUSE_IN_HEADER_SIZE = 40;
export const FUSE_OUT_HEADER_SIZE = 16;

/**
 * A request's unique id: a Number whenever it is exactly representable (the kernel counts up from
 * 2, so in practice always), a BigInt only above 2^53. Reading a BigInt for every request was a
 * sizeable share of the server's garbage. One id always decodes to the same representation, so
 * either kind works as a Map key.
 */
export type FuseUnique = number | bigint;

const TWO_32 = 2 ** 32;
/** High halves up to this keep hi * 2^32 + lo below 2^53. */
const MAX_EXACT_HIGH = 2 ** 21 - 1;

/** An unsigned 64-bit field as a FuseUnique. */
export function readUnique(buf: Buffer, at: number): FuseUnique {
  const lo = buf.readUInt32LE(at);
  const hi = buf.readUInt32LE(at + 4);
  return hi <= MAX_EXACT_HIGH ? hi * TWO_32 + lo : buf.readBigUInt64LE(at);
}

/** An unsigned 64-bit field known to be far below 2^53 (file handles, offsets): two 32-bit reads
 * instead of a BigInt on every READ, READDIR and RELEASE. */
export function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at + 4) * TWO_32 + buf.readUInt32LE(at);
}

/** The unique id of a message long enough to have one (request and reply headers both carry it
 * at bytes 8..16), for answering or reporting a message that is otherwise unusable. */
export function peekUnique(msg: Buffer): FuseUnique | undefined {
  return msg.length >= 16 ? readUnique(msg, 8) : undefined;
}

export function writeUnique(buf: Buffer, at: number, unique: FuseUnique): void {
  if (typeof unique === 'bigint') {
    buf.writeBigUInt64LE(unique, at);
    return;
  }
  buf.writeUInt32LE(unique % TWO_32, at);
  buf.writeUInt32LE(Math.floor(unique / TWO_32), at + 4);
}

export interface FuseInHeader {
  len: number;
  opcode: number;
  unique: FuseUnique;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
  /** length of extensions in 8-byte units (7.38) */
  total_extlen: number;
}

export function decodeInHeader(buf: Buffer): FuseInHeader {
  return {
    len: buf.readUInt32LE(0),
    opcode: buf.readUInt32LE(4),
    unique: readUnique(buf, 8),
    // Node ids are our inode numbers, far below 2^53; a larger one (a malformed request) only
    // needs to match none of them, which its rounded value does not either.
    nodeid: readU64(buf, 16),
    uid: buf.readUInt32LE(24),
    gid: buf.readUInt32LE(28),
    pid: buf.readUInt32LE(32),
    total_extlen: buf.readUInt16LE(36),
  };
}

export function encodeInHeader(h: FuseInHeader): Buffer {
  const buf = Buffer.alloc(FUSE_IN_HEADER_SIZE);
  buf.writeUInt32LE(h.len, 0);
  buf.writeUInt32LE(h.opcode, 4);
  writeUnique(buf, 8, h.unique);
  buf.writeBigUInt64LE(BigInt(h.nodeid), 16);
  buf.writeUInt32LE(h.uid, 24);
  buf.writeUInt32LE(h.gid, 28);
  buf.writeUInt32LE(h.pid, 32);
  buf.writeUInt16LE(h.total_extlen, 36);
  return buf;
}

export interface FuseOutHeader {
  len: number;
  /** 0 or a negated errno */
  error: number;
  /** decodeOutHeader gives a BigInt (tests and diagnostics only; not on the request path). */
  unique: FuseUnique;
}

export function decodeOutHeader(buf: Buffer): FuseOutHeader & { unique: bigint } {
  return { len: buf.readUInt32LE(0), error: buf.readInt32LE(4), unique: buf.readBigUInt64LE(8) };
}

export function encodeOutHeader(h: FuseOutHeader, into?: Buffer): Buffer {
  return writeOutHeader(into ?? Buffer.allocUnsafe(FUSE_OUT_HEADER_SIZE), h.len, h.error, h.unique);
}

/** Field by field rather than from a header object: one less allocation per reply. */
function writeOutHeader(buf: Buffer, len: number, error: number, unique: FuseUnique): Buffer {
  buf.writeUInt32LE(len, 0);
  buf.writeInt32LE(error, 4);
  writeUnique(buf, 8, unique);
  return buf;
}

/** ArrayBuffers from allocWithHeadroom: their first FUSE_OUT_HEADER_SIZE bytes are free. */
const withHeadroom = new WeakSet<ArrayBufferLike>();

/**
 * Memory for a reply body with room for the out header in front of it (the body starts at
 * FUSE_OUT_HEADER_SIZE): encodeReply then writes the header in place and sends the same memory,
 * instead of copying the body (1 MiB per READ). Any view of it that starts at the body's first
 * byte keeps that property. ../reply-pool.ts hands these out and reuses them.
 */
export function allocWithHeadroom(bodySize: number): ArrayBufferLike {
  const ab = Buffer.allocUnsafeSlow(FUSE_OUT_HEADER_SIZE + bodySize).buffer;
  withHeadroom.add(ab);
  return ab;
}

/** A complete reply: header followed by the body, ready for one write(2). */
export function encodeReply(unique: FuseUnique, body?: Buffer): Buffer {
  const len = FUSE_OUT_HEADER_SIZE + (body?.length ?? 0);
  if (body && body.byteOffset === FUSE_OUT_HEADER_SIZE && withHeadroom.has(body.buffer)) {
    return writeOutHeader(Buffer.from(body.buffer, 0, len), len, 0, unique);
  }
  // allocUnsafe: small replies are slices of Node's shared 8 KiB slab, not an ArrayBuffer each.
  const buf = writeOutHeader(Buffer.allocUnsafe(len), len, 0, unique);
  body?.copy(buf, FUSE_OUT_HEADER_SIZE);
  return buf;
}

export function encodeErrorReply(unique: FuseUnique, errno: number): Buffer {
  return writeOutHeader(Buffer.allocUnsafe(FUSE_OUT_HEADER_SIZE), FUSE_OUT_HEADER_SIZE, -errno, unique);
}

/**
 * Split `count` NUL-terminated names off the front of buf; undefined when one is unterminated.
 * Returns the names (without NUL) and whatever follows them (SETXATTR's value).
 */
export function decodeNames(buf: Buffer, count: number): { names: Buffer[]; rest: Buffer } | undefined {
  const names: Buffer[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const nul = buf.indexOf(0, at);
    if (nul < 0) return undefined;
    names.push(buf.subarray(at, nul));
    at = nul + 1;
  }
  return { names, rest: buf.subarray(at) };
}

export function encodeNames(names: (Buffer | string)[]): Buffer {
  return Buffer.concat(names.flatMap((n) => [Buffer.from(n), Buffer.from([0])]));
}
