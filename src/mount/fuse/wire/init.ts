// struct fuse_init_in / fuse_init_out. Both grew over time: fuse_init_in is 16 bytes before 7.36
// and 64 from then on (flags2 + reserved); the reply the kernel accepts is 8 bytes before 7.5,
// 24 before 7.23 and 64 from then on, so encodeInitOut sizes it by the negotiated minor.

export const FUSE_COMPAT_INIT_IN_SIZE = 16;
export const FUSE_INIT_IN_SIZE = 64;
export const FUSE_COMPAT_INIT_OUT_SIZE = 8;
export const FUSE_COMPAT_22_INIT_OUT_SIZE = 24;
export const FUSE_INIT_OUT_SIZE = 64;

export interface FuseInitIn {
  major: number;
  minor: number;
  max_readahead: number;
  /** flags | flags2 << 32 */
  flags: bigint;
}

export function decodeInitIn(buf: Buffer): FuseInitIn {
  const low = BigInt(buf.readUInt32LE(12));
  const high = buf.length >= 20 ? BigInt(buf.readUInt32LE(16)) : 0n;
  return {
    major: buf.readUInt32LE(0),
    minor: buf.readUInt32LE(4),
    max_readahead: buf.readUInt32LE(8),
    flags: low | (high << 32n),
  };
}

/** The 64-byte form (7.36+); `compat` gives the 16-byte form older kernels send. */
export function encodeInitIn(v: FuseInitIn, compat = false): Buffer {
  const buf = Buffer.alloc(compat ? FUSE_COMPAT_INIT_IN_SIZE : FUSE_INIT_IN_SIZE);
  buf.writeUInt32LE(v.major, 0);
  buf.writeUInt32LE(v.minor, 4);
  buf.writeUInt32LE(v.max_readahead, 8);
  buf.writeUInt32LE(Number(v.flags & 0xffffffffn), 12);
  if (!compat) buf.writeUInt32LE(Number((v.flags >> 32n) & 0xffffffffn), 16);
  return buf;
}

export interface FuseInitOut {
  major: number;
  minor: number;
  max_readahead: number;
  /** flags | flags2 << 32 */
  flags: bigint;
  max_background: number;
  congestion_threshold: number;
  max_write: number;
  time_gran: number;
  max_pages: number;
  map_alignment: number;
  max_stack_depth: number;
  request_timeout: number;
}

export function initOutSize(minor: number): number {
  if (minor < 5) return FUSE_COMPAT_INIT_OUT_SIZE;
  if (minor < 23) return FUSE_COMPAT_22_INIT_OUT_SIZE;
  return FUSE_INIT_OUT_SIZE;
}

export function encodeInitOut(v: FuseInitOut, size = initOutSize(v.minor)): Buffer {
  const buf = Buffer.alloc(FUSE_INIT_OUT_SIZE);
  buf.writeUInt32LE(v.major, 0);
  buf.writeUInt32LE(v.minor, 4);
  buf.writeUInt32LE(v.max_readahead, 8);
  buf.writeUInt32LE(Number(v.flags & 0xffffffffn), 12);
  buf.writeUInt16LE(v.max_background, 16);
  buf.writeUInt16LE(v.congestion_threshold, 18);
  buf.writeUInt32LE(v.max_write, 20);
  buf.writeUInt32LE(v.time_gran, 24);
  buf.writeUInt16LE(v.max_pages, 28);
  buf.writeUInt16LE(v.map_alignment, 30);
  buf.writeUInt32LE(Number((v.flags >> 32n) & 0xffffffffn), 32);
  buf.writeUInt32LE(v.max_stack_depth, 36);
  buf.writeUInt16LE(v.request_timeout, 40);
  return buf.subarray(0, size);
}

/** Decodes any of the three sizes; fields the size lacks read as 0. */
export function decodeInitOut(buf: Buffer): FuseInitOut {
  const full = Buffer.alloc(FUSE_INIT_OUT_SIZE);
  buf.copy(full, 0, 0, Math.min(buf.length, FUSE_INIT_OUT_SIZE));
  return {
    major: full.readUInt32LE(0),
    minor: full.readUInt32LE(4),
    max_readahead: full.readUInt32LE(8),
    flags: BigInt(full.readUInt32LE(12)) | (BigInt(full.readUInt32LE(32)) << 32n),
    max_background: full.readUInt16LE(16),
    congestion_threshold: full.readUInt16LE(18),
    max_write: full.readUInt32LE(20),
    time_gran: full.readUInt32LE(24),
    max_pages: full.readUInt16LE(28),
    map_alignment: full.readUInt16LE(30),
    max_stack_depth: full.readUInt32LE(36),
    request_timeout: full.readUInt16LE(40),
  };
}
