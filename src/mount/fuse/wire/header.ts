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

/** ArrayBuffers made by allocReplyBody: their first FUSE_OUT_HEADER_SIZE bytes are free. */
const withHeadroom = new WeakSet<ArrayBufferLike>();
/** Reply buffers for READ data are reused once written: allocating 1 MiB per READ keeps the
 * garbage collector busy and the RSS high. A few suffice: replies are written as they finish. */
export const POOLED_BODY_SIZE = 1 << 20;
/** Bodies of every size are pooled: allocated one by one, small ones (READDIR, the tail of an
 * object file, random 4 KiB reads) each made an ArrayBuffer that piled up in malloc's heap until
 * the garbage collector freed it (bench-fs without passthrough, after reading every file: ~6 MiB
 * with 4 KiB ones allocated; after 20k random 4 KiB reads, [heap] 4 MiB against 2.8). Only the
 * pages a reply touches become resident, so a small READ in a 1 MiB buffer costs what it uses. */
/** 4 measured worse: more READs are in flight than readahead suggests, and the misses allocated
 * 1 MiB each (bench peak RSS 139 MiB, seq read 1.7x slower). The pool is dropped when idle. */
const POOL_MAX = 8;
const pool: ArrayBufferLike[] = [];
const pooled = new WeakSet<ArrayBufferLike>();
/** Whether a body was taken from the pool since releaseIdleReplyPool last looked. */
let poolUsed = false;

/**
 * A body buffer with room for the out header in front of it: encodeReply then writes the header
 * in place and sends the same memory, instead of copying the body (1 MiB per READ). Any
 * subarray that still starts at the body's first byte keeps that property. Bodies up to 1 MiB
 * come from a pool; recycleReply gives them back once the reply was written.
 */
export function allocReplyBody(size: number): Buffer {
  if (size <= POOLED_BODY_SIZE) {
    poolUsed = true;
    let ab = pool.pop();
    if (!ab) {
      ab = Buffer.allocUnsafeSlow(FUSE_OUT_HEADER_SIZE + POOLED_BODY_SIZE).buffer;
      withHeadroom.add(ab);
      pooled.add(ab);
    }
    return Buffer.from(ab, FUSE_OUT_HEADER_SIZE, size);
  }
  const whole = Buffer.allocUnsafeSlow(FUSE_OUT_HEADER_SIZE + size);
  withHeadroom.add(whole.buffer);
  return whole.subarray(FUSE_OUT_HEADER_SIZE);
}

/** Returns a written reply's memory to the pool when it came from there; the caller must not
 * touch `reply` afterwards. Other buffers are left to the garbage collector. */
export function recycleReply(reply: Buffer): void {
  if (pooled.has(reply.buffer) && pool.length < POOL_MAX && !pool.includes(reply.buffer))
    pool.push(reply.buffer);
}

/** Drops the pooled buffers (an idle server gives their memory back); READs refill the pool. */
export function releaseReplyPool(): void {
  pool.length = 0;
}

/**
 * releaseReplyPool, but only when no body was taken from the pool since the previous call (the
 * server's periodic memory release calls this). Dropped during a burst of READs, the buffers
 * stayed resident until the next full garbage collection while the READs that followed
 * allocated new ones: bench-fs without passthrough held 8 MiB of them where 4 were in use.
 */
export function releaseIdleReplyPool(): boolean {
  const idle = !poolUsed;
  poolUsed = false;
  if (idle) pool.length = 0;
  return idle;
}

/** Buffers currently pooled (tests). */
export function replyPoolSize(): number {
  return pool.length;
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
