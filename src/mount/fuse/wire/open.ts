// struct fuse_open_in / fuse_open_out (OPEN, OPENDIR), fuse_read_in (READ, READDIR, READDIRPLUS),
// fuse_release_in (RELEASE, RELEASEDIR), fuse_flush_in and fuse_fsync_in. File handles are our
// own small integers, so they are numbers here although the wire field is 64 bits.

import { readU64, readUnique, writeUnique, type FuseUnique } from './header.js';

export const FUSE_OPEN_IN_SIZE = 8;
export const FUSE_OPEN_OUT_SIZE = 16;
export const FUSE_READ_IN_SIZE = 40;
export const FUSE_RELEASE_IN_SIZE = 24;
export const FUSE_FLUSH_IN_SIZE = 24;
export const FUSE_FSYNC_IN_SIZE = 16;

export interface FuseOpenIn {
  flags: number;
  open_flags: number;
}

export function decodeOpenIn(buf: Buffer): FuseOpenIn {
  return { flags: buf.readUInt32LE(0), open_flags: buf.readUInt32LE(4) };
}

export function encodeOpenIn(v: FuseOpenIn): Buffer {
  const buf = Buffer.alloc(FUSE_OPEN_IN_SIZE);
  buf.writeUInt32LE(v.flags, 0);
  buf.writeUInt32LE(v.open_flags, 4);
  return buf;
}

export interface FuseOpenOut {
  fh: number;
  open_flags: number;
  /** 7.40: the id from FUSE_DEV_IOC_BACKING_OPEN when open_flags has FOPEN_PASSTHROUGH (was padding). */
  backing_id: number;
}

export function encodeOpenOut(v: FuseOpenOut): Buffer {
  const buf = Buffer.alloc(FUSE_OPEN_OUT_SIZE);
  buf.writeBigUInt64LE(BigInt(v.fh), 0);
  buf.writeUInt32LE(v.open_flags, 8);
  buf.writeInt32LE(v.backing_id, 12);
  return buf;
}

export function decodeOpenOut(buf: Buffer): FuseOpenOut {
  return {
    fh: Number(buf.readBigUInt64LE(0)),
    open_flags: buf.readUInt32LE(8),
    backing_id: buf.readInt32LE(12),
  };
}

export interface FuseReadIn {
  fh: number;
  offset: number;
  size: number;
  read_flags: number;
  /** Any 64-bit value: a Number unless it needs a BigInt (see FuseUnique). */
  lock_owner: FuseUnique;
  flags: number;
}

export function decodeReadIn(buf: Buffer): FuseReadIn {
  return {
    fh: readU64(buf, 0),
    offset: readU64(buf, 8),
    size: buf.readUInt32LE(16),
    read_flags: buf.readUInt32LE(20),
    lock_owner: readUnique(buf, 24),
    flags: buf.readUInt32LE(32),
  };
}

export function encodeReadIn(v: FuseReadIn): Buffer {
  const buf = Buffer.alloc(FUSE_READ_IN_SIZE);
  buf.writeBigUInt64LE(BigInt(v.fh), 0);
  buf.writeBigUInt64LE(BigInt(v.offset), 8);
  buf.writeUInt32LE(v.size, 16);
  buf.writeUInt32LE(v.read_flags, 20);
  writeUnique(buf, 24, v.lock_owner);
  buf.writeUInt32LE(v.flags, 32);
  return buf;
}

export interface FuseReleaseIn {
  fh: number;
  flags: number;
  release_flags: number;
  /** Any 64-bit value: a Number unless it needs a BigInt (see FuseUnique). */
  lock_owner: FuseUnique;
}

export function decodeReleaseIn(buf: Buffer): FuseReleaseIn {
  return {
    fh: readU64(buf, 0),
    flags: buf.readUInt32LE(8),
    release_flags: buf.readUInt32LE(12),
    lock_owner: readUnique(buf, 16),
  };
}

export function encodeReleaseIn(v: FuseReleaseIn): Buffer {
  const buf = Buffer.alloc(FUSE_RELEASE_IN_SIZE);
  buf.writeBigUInt64LE(BigInt(v.fh), 0);
  buf.writeUInt32LE(v.flags, 8);
  buf.writeUInt32LE(v.release_flags, 12);
  writeUnique(buf, 16, v.lock_owner);
  return buf;
}

export interface FuseFlushIn {
  fh: number;
  /** Any 64-bit value: a Number unless it needs a BigInt (see FuseUnique). */
  lock_owner: FuseUnique;
}

export function decodeFlushIn(buf: Buffer): FuseFlushIn {
  return { fh: readU64(buf, 0), lock_owner: readUnique(buf, 16) };
}

export function encodeFlushIn(v: FuseFlushIn): Buffer {
  const buf = Buffer.alloc(FUSE_FLUSH_IN_SIZE);
  buf.writeBigUInt64LE(BigInt(v.fh), 0);
  writeUnique(buf, 16, v.lock_owner);
  return buf;
}

export interface FuseFsyncIn {
  fh: number;
  fsync_flags: number;
}

export function decodeFsyncIn(buf: Buffer): FuseFsyncIn {
  return { fh: Number(buf.readBigUInt64LE(0)), fsync_flags: buf.readUInt32LE(8) };
}

export function encodeFsyncIn(v: FuseFsyncIn): Buffer {
  const buf = Buffer.alloc(FUSE_FSYNC_IN_SIZE);
  buf.writeBigUInt64LE(BigInt(v.fh), 0);
  buf.writeUInt32LE(v.fsync_flags, 8);
  return buf;
}
