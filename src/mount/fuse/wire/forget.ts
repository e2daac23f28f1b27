// struct fuse_forget_in (FORGET), fuse_batch_forget_in + fuse_forget_one[] (BATCH_FORGET).
// Neither gets a reply.

export const FUSE_FORGET_IN_SIZE = 8;
export const FUSE_BATCH_FORGET_IN_SIZE = 8;
export const FUSE_FORGET_ONE_SIZE = 16;

export interface FuseForgetIn {
  nlookup: number;
}

export function decodeForgetIn(buf: Buffer): FuseForgetIn {
  return { nlookup: Number(buf.readBigUInt64LE(0)) };
}

export function encodeForgetIn(v: FuseForgetIn): Buffer {
  const buf = Buffer.alloc(FUSE_FORGET_IN_SIZE);
  buf.writeBigUInt64LE(BigInt(v.nlookup), 0);
  return buf;
}

export interface FuseForgetOne {
  nodeid: number;
  nlookup: number;
}

/** The records actually present: a count larger than the message is cut to what arrived. */
export function decodeBatchForgetIn(buf: Buffer): FuseForgetOne[] {
  const count = Math.min(buf.readUInt32LE(0), Math.floor((buf.length - 8) / FUSE_FORGET_ONE_SIZE));
  const out: FuseForgetOne[] = [];
  for (let i = 0; i < count; i++) {
    const at = FUSE_BATCH_FORGET_IN_SIZE + i * FUSE_FORGET_ONE_SIZE;
    out.push({ nodeid: Number(buf.readBigUInt64LE(at)), nlookup: Number(buf.readBigUInt64LE(at + 8)) });
  }
  return out;
}

export function encodeBatchForgetIn(list: FuseForgetOne[]): Buffer {
  const buf = Buffer.alloc(FUSE_BATCH_FORGET_IN_SIZE + list.length * FUSE_FORGET_ONE_SIZE);
  buf.writeUInt32LE(list.length, 0);
  list.forEach((f, i) => {
    const at = FUSE_BATCH_FORGET_IN_SIZE + i * FUSE_FORGET_ONE_SIZE;
    buf.writeBigUInt64LE(BigInt(f.nodeid), at);
    buf.writeBigUInt64LE(BigInt(f.nlookup), at + 8);
  });
  return buf;
}
