// struct fuse_getxattr_in / fuse_getxattr_out (GETXATTR, LISTXATTR) and fuse_setxattr_in, whose
// size depends on FUSE_SETXATTR_EXT (8 bytes without it, 16 with it).

export const FUSE_GETXATTR_IN_SIZE = 8;
export const FUSE_GETXATTR_OUT_SIZE = 8;
export const FUSE_COMPAT_SETXATTR_IN_SIZE = 8;

export interface FuseGetxattrIn {
  size: number;
}

export function decodeGetxattrIn(buf: Buffer): FuseGetxattrIn {
  return { size: buf.readUInt32LE(0) };
}

export function encodeGetxattrIn(v: FuseGetxattrIn): Buffer {
  const buf = Buffer.alloc(FUSE_GETXATTR_IN_SIZE);
  buf.writeUInt32LE(v.size, 0);
  return buf;
}

export interface FuseGetxattrOut {
  size: number;
}

export function decodeGetxattrOut(buf: Buffer): FuseGetxattrOut {
  return { size: buf.readUInt32LE(0) };
}

export function encodeGetxattrOut(v: FuseGetxattrOut): Buffer {
  const buf = Buffer.alloc(FUSE_GETXATTR_OUT_SIZE);
  buf.writeUInt32LE(v.size, 0);
  return buf;
}

export interface FuseSetxattrIn {
  size: number;
  flags: number;
}

export function decodeSetxattrIn(buf: Buffer): FuseSetxattrIn {
  return { size: buf.readUInt32LE(0), flags: buf.readUInt32LE(4) };
}

export function encodeSetxattrIn(v: FuseSetxattrIn): Buffer {
  const buf = Buffer.alloc(FUSE_COMPAT_SETXATTR_IN_SIZE);
  buf.writeUInt32LE(v.size, 0);
  buf.writeUInt32LE(v.flags, 4);
  return buf;
}

/** LISTXATTR's reply: every name followed by a NUL. */
export function encodeXattrNames(names: string[]): Buffer {
  return Buffer.concat(names.map((n) => Buffer.from(n + '\0')));
}

export function decodeXattrNames(buf: Buffer): string[] {
  const s = buf.toString();
  return s === '' ? [] : s.slice(0, -1).split('\0');
}
