// struct fuse_lseek_in / fuse_lseek_out (SEEK_DATA and SEEK_HOLE only: the kernel does the rest).

export const FUSE_LSEEK_IN_SIZE = 24;
export const FUSE_LSEEK_OUT_SIZE = 8;

export interface FuseLseekIn {
  fh: number;
  offset: number;
  whence: number;
}

export function decodeLseekIn(buf: Buffer): FuseLseekIn {
  return {
    fh: Number(buf.readBigUInt64LE(0)),
    offset: Number(buf.readBigUInt64LE(8)),
    whence: buf.readUInt32LE(16),
  };
}

export function encodeLseekIn(v: FuseLseekIn): Buffer {
  const buf = Buffer.alloc(FUSE_LSEEK_IN_SIZE);
  buf.writeBigUInt64LE(BigInt(v.fh), 0);
  buf.writeBigUInt64LE(BigInt(v.offset), 8);
  buf.writeUInt32LE(v.whence, 16);
  return buf;
}

export interface FuseLseekOut {
  offset: number;
}

export function encodeLseekOut(v: FuseLseekOut): Buffer {
  const buf = Buffer.alloc(FUSE_LSEEK_OUT_SIZE);
  buf.writeBigUInt64LE(BigInt(v.offset), 0);
  return buf;
}

export function decodeLseekOut(buf: Buffer): FuseLseekOut {
  return { offset: Number(buf.readBigUInt64LE(0)) };
}
