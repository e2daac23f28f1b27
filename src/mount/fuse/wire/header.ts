// struct fuse_in_header / fuse_out_header, and the NUL-terminated names that follow some requests.

export const FUSE_IN_HEADER_SIZE = 40;
export const FUSE_OUT_HEADER_SIZE = 16;

export interface FuseInHeader {
  len: number;
  opcode: number;
  unique: bigint;
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
    unique: buf.readBigUInt64LE(8),
    // Node ids are our inode numbers: far below 2^53.
    nodeid: Number(buf.readBigUInt64LE(16)),
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
  buf.writeBigUInt64LE(h.unique, 8);
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
  unique: bigint;
}

export function decodeOutHeader(buf: Buffer): FuseOutHeader {
  return { len: buf.readUInt32LE(0), error: buf.readInt32LE(4), unique: buf.readBigUInt64LE(8) };
}

export function encodeOutHeader(h: FuseOutHeader, into?: Buffer): Buffer {
  const buf = into ?? Buffer.alloc(FUSE_OUT_HEADER_SIZE);
  buf.writeUInt32LE(h.len, 0);
  buf.writeInt32LE(h.error, 4);
  buf.writeBigUInt64LE(h.unique, 8);
  return buf;
}

/** ArrayBuffers made by allocReplyBody: their first FUSE_OUT_HEADER_SIZE bytes are free. */
const withHeadroom = new WeakSet<ArrayBufferLike>();
/** Reply buffers for READ data are reused once written: allocating 1 MiB per READ keeps the
 * garbage collector busy and the RSS high. A few suffice: replies are written as they finish. */
export const POOLED_BODY_SIZE = 1 << 20;
/** Bodies above this size are pooled too (every READ of an object file: inline files are at most
 * 4 KiB): allocated one by one, the small ones piled up in malloc's heap until the garbage
 * collector freed them (bench-fs without passthrough, after reading every file: ~6 MiB). Only the
 * pages a reply touches become resident, so a small READ in a 1 MiB buffer costs what it uses. */
const POOLED_MIN = 4096;
/** 4 measured worse: more READs are in flight than readahead suggests, and the misses allocated
 * 1 MiB each (bench peak RSS 139 MiB, seq read 1.7x slower). The pool is dropped when idle. */
const POOL_MAX = 8;
const pool: ArrayBufferLike[] = [];
const pooled = new WeakSet<ArrayBufferLike>();

/**
 * A body buffer with room for the out header in front of it: encodeReply then writes the header
 * in place and sends the same memory, instead of copying the body (1 MiB per READ). Any
 * subarray that still starts at the body's first byte keeps that property. Bodies of more than
 * 4 KiB come from a pool; recycleReply gives them back once the reply was written.
 */
export function allocReplyBody(size: number): Buffer {
  if (size > POOLED_MIN && size <= POOLED_BODY_SIZE) {
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

/** Buffers currently pooled (tests). */
export function replyPoolSize(): number {
  return pool.length;
}

/** A complete reply: header followed by the body, ready for one write(2). */
export function encodeReply(unique: bigint, body?: Buffer): Buffer {
  const len = FUSE_OUT_HEADER_SIZE + (body?.length ?? 0);
  if (body && body.byteOffset === FUSE_OUT_HEADER_SIZE && withHeadroom.has(body.buffer)) {
    const buf = Buffer.from(body.buffer, 0, len);
    encodeOutHeader({ len, error: 0, unique }, buf);
    return buf;
  }
  const buf = Buffer.allocUnsafe(len);
  encodeOutHeader({ len, error: 0, unique }, buf);
  body?.copy(buf, FUSE_OUT_HEADER_SIZE);
  return buf;
}

export function encodeErrorReply(unique: bigint, errno: number): Buffer {
  return encodeOutHeader({ len: FUSE_OUT_HEADER_SIZE, error: -errno, unique });
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
