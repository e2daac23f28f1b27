// struct fuse_interrupt_in: the unique id of the request the kernel wants interrupted.

export const FUSE_INTERRUPT_IN_SIZE = 8;

export interface FuseInterruptIn {
  unique: bigint;
}

export function decodeInterruptIn(buf: Buffer): FuseInterruptIn {
  return { unique: buf.readBigUInt64LE(0) };
}

export function encodeInterruptIn(v: FuseInterruptIn): Buffer {
  const buf = Buffer.alloc(FUSE_INTERRUPT_IN_SIZE);
  buf.writeBigUInt64LE(v.unique, 0);
  return buf;
}
