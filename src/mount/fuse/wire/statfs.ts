// struct fuse_kstatfs inside fuse_statfs_out (80 bytes; 48 before 7.4, which we never serve).

export const FUSE_STATFS_OUT_SIZE = 80;

export interface FuseKstatfs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

export function encodeStatfsOut(st: FuseKstatfs): Buffer {
  const buf = Buffer.alloc(FUSE_STATFS_OUT_SIZE);
  buf.writeBigUInt64LE(BigInt(st.blocks), 0);
  buf.writeBigUInt64LE(BigInt(st.bfree), 8);
  buf.writeBigUInt64LE(BigInt(st.bavail), 16);
  buf.writeBigUInt64LE(BigInt(st.files), 24);
  buf.writeBigUInt64LE(BigInt(st.ffree), 32);
  buf.writeUInt32LE(st.bsize, 40);
  buf.writeUInt32LE(st.namelen, 44);
  buf.writeUInt32LE(st.frsize, 48);
  return buf;
}

export function decodeStatfsOut(buf: Buffer): FuseKstatfs {
  return {
    blocks: Number(buf.readBigUInt64LE(0)),
    bfree: Number(buf.readBigUInt64LE(8)),
    bavail: Number(buf.readBigUInt64LE(16)),
    files: Number(buf.readBigUInt64LE(24)),
    ffree: Number(buf.readBigUInt64LE(32)),
    bsize: buf.readUInt32LE(40),
    namelen: buf.readUInt32LE(44),
    frsize: buf.readUInt32LE(48),
  };
}
