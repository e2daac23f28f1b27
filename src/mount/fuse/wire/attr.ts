// struct fuse_attr, fuse_entry_out, fuse_attr_out, fuse_getattr_in and fuse_access_in: the
// entry/attr family (LOOKUP, GETATTR, ACCESS, and each READDIRPLUS record).

export const FUSE_ATTR_SIZE = 88;
export const FUSE_ENTRY_OUT_SIZE = 40 + FUSE_ATTR_SIZE;
export const FUSE_ATTR_OUT_SIZE = 16 + FUSE_ATTR_SIZE;
export const FUSE_GETATTR_IN_SIZE = 16;
export const FUSE_ACCESS_IN_SIZE = 8;

export interface FuseAttr {
  ino: number;
  size: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
  atimensec: number;
  mtimensec: number;
  ctimensec: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
  flags: number;
}

// Hot path (every LOOKUP, GETATTR and READDIRPLUS record): two u32 writes instead of a BigInt.
export function writeU64(buf: Buffer, v: number, at: number): void {
  buf.writeUInt32LE(v % 0x100000000, at);
  buf.writeUInt32LE(Math.floor(v / 0x100000000), at + 4);
}

function writeI64(buf: Buffer, v: number, at: number): void {
  if (v >= 0) writeU64(buf, v, at);
  else buf.writeBigInt64LE(BigInt(v), at);
}

export function writeAttr(buf: Buffer, at: number, a: FuseAttr): void {
  writeU64(buf, a.ino, at);
  writeU64(buf, a.size, at + 8);
  writeU64(buf, a.blocks, at + 16);
  // Times are signed in struct kstat: a pre-1970 mtime is stored as two's complement.
  writeI64(buf, a.atime, at + 24);
  writeI64(buf, a.mtime, at + 32);
  writeI64(buf, a.ctime, at + 40);
  buf.writeUInt32LE(a.atimensec, at + 48);
  buf.writeUInt32LE(a.mtimensec, at + 52);
  buf.writeUInt32LE(a.ctimensec, at + 56);
  buf.writeUInt32LE(a.mode, at + 60);
  buf.writeUInt32LE(a.nlink, at + 64);
  buf.writeUInt32LE(a.uid, at + 68);
  buf.writeUInt32LE(a.gid, at + 72);
  buf.writeUInt32LE(a.rdev, at + 76);
  buf.writeUInt32LE(a.blksize, at + 80);
  buf.writeUInt32LE(a.flags, at + 84);
}

export function readAttr(buf: Buffer, at: number): FuseAttr {
  return {
    ino: Number(buf.readBigUInt64LE(at)),
    size: Number(buf.readBigUInt64LE(at + 8)),
    blocks: Number(buf.readBigUInt64LE(at + 16)),
    atime: Number(buf.readBigInt64LE(at + 24)),
    mtime: Number(buf.readBigInt64LE(at + 32)),
    ctime: Number(buf.readBigInt64LE(at + 40)),
    atimensec: buf.readUInt32LE(at + 48),
    mtimensec: buf.readUInt32LE(at + 52),
    ctimensec: buf.readUInt32LE(at + 56),
    mode: buf.readUInt32LE(at + 60),
    nlink: buf.readUInt32LE(at + 64),
    uid: buf.readUInt32LE(at + 68),
    gid: buf.readUInt32LE(at + 72),
    rdev: buf.readUInt32LE(at + 76),
    blksize: buf.readUInt32LE(at + 80),
    flags: buf.readUInt32LE(at + 84),
  };
}

export interface FuseEntryOut {
  nodeid: number;
  generation: number;
  entry_valid: number;
  attr_valid: number;
  entry_valid_nsec: number;
  attr_valid_nsec: number;
  attr: FuseAttr;
}

export function writeEntryOut(buf: Buffer, at: number, e: FuseEntryOut): void {
  writeU64(buf, e.nodeid, at);
  writeU64(buf, e.generation, at + 8);
  writeU64(buf, e.entry_valid, at + 16);
  writeU64(buf, e.attr_valid, at + 24);
  buf.writeUInt32LE(e.entry_valid_nsec, at + 32);
  buf.writeUInt32LE(e.attr_valid_nsec, at + 36);
  writeAttr(buf, at + 40, e.attr);
}

export function encodeEntryOut(e: FuseEntryOut): Buffer {
  const buf = Buffer.alloc(FUSE_ENTRY_OUT_SIZE);
  writeEntryOut(buf, 0, e);
  return buf;
}

export function readEntryOut(buf: Buffer, at: number): FuseEntryOut {
  return {
    nodeid: Number(buf.readBigUInt64LE(at)),
    generation: Number(buf.readBigUInt64LE(at + 8)),
    entry_valid: Number(buf.readBigUInt64LE(at + 16)),
    attr_valid: Number(buf.readBigUInt64LE(at + 24)),
    entry_valid_nsec: buf.readUInt32LE(at + 32),
    attr_valid_nsec: buf.readUInt32LE(at + 36),
    attr: readAttr(buf, at + 40),
  };
}

export function decodeEntryOut(buf: Buffer): FuseEntryOut {
  return readEntryOut(buf, 0);
}

export interface FuseAttrOut {
  attr_valid: number;
  attr_valid_nsec: number;
  attr: FuseAttr;
}

export function encodeAttrOut(v: FuseAttrOut): Buffer {
  const buf = Buffer.alloc(FUSE_ATTR_OUT_SIZE);
  buf.writeBigUInt64LE(BigInt(v.attr_valid), 0);
  buf.writeUInt32LE(v.attr_valid_nsec, 8);
  writeAttr(buf, 16, v.attr);
  return buf;
}

export function decodeAttrOut(buf: Buffer): FuseAttrOut {
  return {
    attr_valid: Number(buf.readBigUInt64LE(0)),
    attr_valid_nsec: buf.readUInt32LE(8),
    attr: readAttr(buf, 16),
  };
}

export interface FuseGetattrIn {
  getattr_flags: number;
  fh: bigint;
}

export function decodeGetattrIn(buf: Buffer): FuseGetattrIn {
  return { getattr_flags: buf.readUInt32LE(0), fh: buf.readBigUInt64LE(8) };
}

export function encodeGetattrIn(v: FuseGetattrIn): Buffer {
  const buf = Buffer.alloc(FUSE_GETATTR_IN_SIZE);
  buf.writeUInt32LE(v.getattr_flags, 0);
  buf.writeBigUInt64LE(v.fh, 8);
  return buf;
}

export interface FuseAccessIn {
  mask: number;
}

export function decodeAccessIn(buf: Buffer): FuseAccessIn {
  return { mask: buf.readUInt32LE(0) };
}

export function encodeAccessIn(v: FuseAccessIn): Buffer {
  const buf = Buffer.alloc(FUSE_ACCESS_IN_SIZE);
  buf.writeUInt32LE(v.mask, 0);
  return buf;
}
