// struct fuse_interrupt_in: the unique id of the request the kernel wants interrupted.

import { readUnique, writeUnique, type FuseUnique } from './header.js';

export const FUSE_INTERRUPT_IN_SIZE = 8;

export interface FuseInterruptIn {
  /** Decoded as the request's own header's unique is, so the two compare equal. */
  unique: FuseUnique;
}

export function decodeInterruptIn(buf: Buffer): FuseInterruptIn {
  return { unique: readUnique(buf, 0) };
}

export function encodeInterruptIn(v: FuseInterruptIn): Buffer {
  const buf = Buffer.alloc(FUSE_INTERRUPT_IN_SIZE);
  writeUnique(buf, 0, v.unique);
  return buf;
}
