// One row per opcode: name, decoder of the fixed input, encoder of the reply body, the fixed input
// size (the smallest the kernel sends at any minor we serve), how many NUL-terminated names follow
// it, whether the kernel expects no reply, and whether it would modify the filesystem (EROFS).
// FuseProtocol checks every message against its row before dispatch.
import * as C from './constants.js';
import { decodeAccessIn, decodeGetattrIn, encodeAttrOut, encodeEntryOut } from './wire/attr.js';
import { decodeBatchForgetIn, decodeForgetIn } from './wire/forget.js';
import { decodeInitIn, encodeInitOut } from './wire/init.js';
import { decodeInterruptIn } from './wire/interrupt.js';
import { decodeLseekIn, encodeLseekOut } from './wire/lseek.js';
import {
  decodeFlushIn,
  decodeFsyncIn,
  decodeOpenIn,
  decodeReadIn,
  decodeReleaseIn,
  encodeOpenOut,
} from './wire/open.js';
import { encodeStatfsOut } from './wire/statfs.js';
import { decodeGetxattrIn, decodeSetxattrIn, encodeGetxattrOut } from './wire/xattr.js';

export interface OpcodeRow {
  name: string;
  /** Decodes the fixed part of the input (for dispatch and debug logging). */
  decode?: (body: Buffer) => unknown;
  /** Encodes the reply body (absent when the reply is raw bytes or empty). */
  encode?: (out: never) => Buffer;
  inSize: number;
  names: number;
  noReply?: boolean;
  mutating?: boolean;
}

const ROWS: [number, OpcodeRow][] = [
  [C.FUSE_LOOKUP, { name: 'LOOKUP', inSize: 0, names: 1, encode: encodeEntryOut }],
  [C.FUSE_FORGET, { name: 'FORGET', inSize: 8, names: 0, noReply: true, decode: decodeForgetIn }],
  [C.FUSE_GETATTR, { name: 'GETATTR', inSize: 16, names: 0, decode: decodeGetattrIn, encode: encodeAttrOut }],
  [C.FUSE_SETATTR, { name: 'SETATTR', inSize: 88, names: 0, mutating: true }],
  [C.FUSE_READLINK, { name: 'READLINK', inSize: 0, names: 0 }],
  [C.FUSE_SYMLINK, { name: 'SYMLINK', inSize: 0, names: 2, mutating: true }],
  [C.FUSE_MKNOD, { name: 'MKNOD', inSize: 8, names: 1, mutating: true }],
  [C.FUSE_MKDIR, { name: 'MKDIR', inSize: 8, names: 1, mutating: true }],
  [C.FUSE_UNLINK, { name: 'UNLINK', inSize: 0, names: 1, mutating: true }],
  [C.FUSE_RMDIR, { name: 'RMDIR', inSize: 0, names: 1, mutating: true }],
  [C.FUSE_RENAME, { name: 'RENAME', inSize: 8, names: 2, mutating: true }],
  [C.FUSE_LINK, { name: 'LINK', inSize: 8, names: 1, mutating: true }],
  [C.FUSE_OPEN, { name: 'OPEN', inSize: 8, names: 0, decode: decodeOpenIn, encode: encodeOpenOut }],
  [C.FUSE_READ, { name: 'READ', inSize: 40, names: 0, decode: decodeReadIn }],
  [C.FUSE_WRITE, { name: 'WRITE', inSize: 24, names: 0, mutating: true }],
  [C.FUSE_STATFS, { name: 'STATFS', inSize: 0, names: 0, encode: encodeStatfsOut }],
  [C.FUSE_RELEASE, { name: 'RELEASE', inSize: 24, names: 0, decode: decodeReleaseIn }],
  [C.FUSE_FSYNC, { name: 'FSYNC', inSize: 16, names: 0, decode: decodeFsyncIn }],
  [C.FUSE_SETXATTR, { name: 'SETXATTR', inSize: 8, names: 1, mutating: true, decode: decodeSetxattrIn }],
  [
    C.FUSE_GETXATTR,
    { name: 'GETXATTR', inSize: 8, names: 1, decode: decodeGetxattrIn, encode: encodeGetxattrOut },
  ],
  [
    C.FUSE_LISTXATTR,
    { name: 'LISTXATTR', inSize: 8, names: 0, decode: decodeGetxattrIn, encode: encodeGetxattrOut },
  ],
  [C.FUSE_REMOVEXATTR, { name: 'REMOVEXATTR', inSize: 0, names: 1, mutating: true }],
  [C.FUSE_FLUSH, { name: 'FLUSH', inSize: 24, names: 0, decode: decodeFlushIn }],
  [C.FUSE_INIT, { name: 'INIT', inSize: 16, names: 0, decode: decodeInitIn, encode: encodeInitOut }],
  [C.FUSE_OPENDIR, { name: 'OPENDIR', inSize: 8, names: 0, decode: decodeOpenIn, encode: encodeOpenOut }],
  [C.FUSE_READDIR, { name: 'READDIR', inSize: 40, names: 0, decode: decodeReadIn }],
  [C.FUSE_RELEASEDIR, { name: 'RELEASEDIR', inSize: 24, names: 0, decode: decodeReleaseIn }],
  [C.FUSE_FSYNCDIR, { name: 'FSYNCDIR', inSize: 16, names: 0, decode: decodeFsyncIn }],
  [C.FUSE_GETLK, { name: 'GETLK', inSize: 48, names: 0 }],
  [C.FUSE_SETLK, { name: 'SETLK', inSize: 48, names: 0 }],
  [C.FUSE_SETLKW, { name: 'SETLKW', inSize: 48, names: 0 }],
  [C.FUSE_ACCESS, { name: 'ACCESS', inSize: 8, names: 0, decode: decodeAccessIn }],
  [C.FUSE_CREATE, { name: 'CREATE', inSize: 16, names: 1, mutating: true }],
  [C.FUSE_INTERRUPT, { name: 'INTERRUPT', inSize: 8, names: 0, noReply: true, decode: decodeInterruptIn }],
  [C.FUSE_BMAP, { name: 'BMAP', inSize: 16, names: 0 }],
  [C.FUSE_DESTROY, { name: 'DESTROY', inSize: 0, names: 0 }],
  [C.FUSE_IOCTL, { name: 'IOCTL', inSize: 32, names: 0 }],
  [C.FUSE_POLL, { name: 'POLL', inSize: 24, names: 0 }],
  [C.FUSE_NOTIFY_REPLY, { name: 'NOTIFY_REPLY', inSize: 0, names: 0, noReply: true }],
  [
    C.FUSE_BATCH_FORGET,
    { name: 'BATCH_FORGET', inSize: 8, names: 0, noReply: true, decode: decodeBatchForgetIn },
  ],
  [C.FUSE_FALLOCATE, { name: 'FALLOCATE', inSize: 32, names: 0, mutating: true }],
  [C.FUSE_READDIRPLUS, { name: 'READDIRPLUS', inSize: 40, names: 0, decode: decodeReadIn }],
  [C.FUSE_RENAME2, { name: 'RENAME2', inSize: 16, names: 2, mutating: true }],
  [C.FUSE_LSEEK, { name: 'LSEEK', inSize: 24, names: 0, decode: decodeLseekIn, encode: encodeLseekOut }],
  [C.FUSE_COPY_FILE_RANGE, { name: 'COPY_FILE_RANGE', inSize: 56, names: 0, mutating: true }],
  [C.FUSE_SETUPMAPPING, { name: 'SETUPMAPPING', inSize: 40, names: 0 }],
  [C.FUSE_REMOVEMAPPING, { name: 'REMOVEMAPPING', inSize: 4, names: 0 }],
  [C.FUSE_SYNCFS, { name: 'SYNCFS', inSize: 8, names: 0 }],
  [C.FUSE_TMPFILE, { name: 'TMPFILE', inSize: 16, names: 1, mutating: true }],
  [C.FUSE_STATX, { name: 'STATX', inSize: 24, names: 0 }],
  [C.FUSE_COPY_FILE_RANGE_64, { name: 'COPY_FILE_RANGE_64', inSize: 56, names: 0, mutating: true }],
];

export const OPCODES: ReadonlyMap<number, OpcodeRow> = new Map(ROWS);

export function opcodeName(opcode: number): string {
  return OPCODES.get(opcode)?.name ?? `OPCODE_${opcode}`;
}
