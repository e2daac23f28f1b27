// The dispatch table, as go-fuse's fuse/opcode.go: one row per opcode with its name, the fixed
// input size (the smallest the kernel sends at any minor we serve), how many NUL-terminated names
// follow it, whether the kernel expects no reply, whether it would modify the filesystem (EROFS),
// the decoder of the fixed input, the handler and the encoder of its result. FuseProtocol checks
// every message against its row (EIO when short, ENOSYS when no row or no handler) and then runs
// decoder, handler and encoder in that order; nothing else pairs an opcode with its structs.
import * as C from './constants.js';
import { FuseError } from './errors.js';
import type { Awaitable, InitInfo, RawFileSystem, RequestContext } from './raw.js';
import {
  decodeAccessIn,
  decodeGetattrIn,
  encodeAttrOut,
  encodeEntryOut,
  FUSE_ACCESS_IN_SIZE,
  FUSE_GETATTR_IN_SIZE,
} from './wire/attr.js';
import {
  decodeBatchForgetIn,
  decodeForgetIn,
  FUSE_BATCH_FORGET_IN_SIZE,
  FUSE_FORGET_IN_SIZE,
} from './wire/forget.js';
import type { FuseInHeader, FuseUnique } from './wire/header.js';
import {
  decodeInitIn,
  encodeInitOut,
  FUSE_COMPAT_INIT_IN_SIZE,
  type FuseInitIn,
  type FuseInitOut,
} from './wire/init.js';
import { decodeInterruptIn, FUSE_INTERRUPT_IN_SIZE } from './wire/interrupt.js';
import { decodeLseekIn, encodeLseekOut, FUSE_LSEEK_IN_SIZE } from './wire/lseek.js';
import {
  decodeFlushIn,
  decodeOpenIn,
  decodeReadIn,
  decodeReleaseIn,
  encodeOpenOut,
  FUSE_FLUSH_IN_SIZE,
  FUSE_FSYNC_IN_SIZE,
  FUSE_OPEN_IN_SIZE,
  FUSE_READ_IN_SIZE,
  FUSE_RELEASE_IN_SIZE,
} from './wire/open.js';
import { encodeStatfsOut } from './wire/statfs.js';
import {
  decodeGetxattrIn,
  encodeGetxattrOut,
  encodeXattrNames,
  FUSE_COMPAT_SETXATTR_IN_SIZE,
  FUSE_GETXATTR_IN_SIZE,
} from './wire/xattr.js';

/** INIT's answer: the reply and the size the kernel accepts (8 bytes for a newer major). */
export interface InitReply {
  out: FuseInitOut;
  size: number;
}

/** What a handler may use of the protocol server besides the filesystem. */
export interface OpcodeServer {
  readonly fs: RawFileSystem;
  /** What INIT settled on; undefined before INIT. */
  readonly info: InitInfo | undefined;
  /** INIT; throws FuseError(EPROTO) for a kernel too old. */
  negotiate(inp: FuseInitIn): InitReply;
  /** DESTROY: `self` is the DESTROY request, which still gets its reply. */
  destroySession(self: FuseUnique): void;
  /** INTERRUPT: unknown or finished requests are ignored (the kernel gives up on them itself). */
  interruptRequest(unique: FuseUnique): void;
}

/** A replying opcode's handler: the reply body is encode(result), or the result itself (bytes or
 * nothing) when the row has no encoder. Throws FuseError for an errno reply. */
export type Serve<In, Out> = (
  s: OpcodeServer,
  ctx: RequestContext,
  inp: In,
  names: Buffer[],
) => Awaitable<Out>;
/** A no-reply opcode's handler: synchronous, and given only the header (no per-request context). */
export type Notice<In> = (s: OpcodeServer, header: FuseInHeader, inp: In) => void;

interface RowShape {
  name: string;
  inSize: number;
  names: number;
  mutating?: boolean;
}

/**
 * A row as FuseProtocol reads it. Its columns' types are erased to unknown: reply() and
 * notice() checked, row by row, that decoder, handler and encoder fit together.
 */
interface RowBase {
  readonly name: string;
  readonly inSize: number;
  readonly names: number;
  readonly mutating: boolean;
  readonly decode: ((body: Buffer) => unknown) | undefined;
}
export interface ReplyRow extends RowBase {
  readonly noReply: false;
  /** undefined: ENOSYS. */
  readonly serve: Serve<unknown, unknown> | undefined;
  /** undefined: the handler returns the body itself (bytes, or nothing for an empty reply). */
  readonly encode: ((out: unknown) => Buffer) | undefined;
}
export interface NoReplyRow extends RowBase {
  readonly noReply: true;
  readonly serve: Notice<unknown> | undefined;
  readonly encode: undefined;
}
export type OpcodeRow = ReplyRow | NoReplyRow;

/** Every row has the same properties in the same order: one object shape for every lookup. */
function makeRow(
  shape: RowShape,
  noReply: boolean,
  decode: ((body: Buffer) => unknown) | undefined,
  serve: unknown,
  encode: unknown,
): OpcodeRow {
  // The erasure: the overloads of reply() and notice() typed these columns against each other.
  return {
    name: shape.name,
    inSize: shape.inSize,
    names: shape.names,
    noReply,
    mutating: shape.mutating ?? false,
    decode,
    serve,
    encode,
  } as OpcodeRow;
}

function reply<In, Out>(
  row: RowShape & { decode?: (body: Buffer) => In; serve: Serve<In, Out>; encode: (out: Out) => Buffer },
): OpcodeRow;
function reply<In>(
  row: RowShape & { decode?: (body: Buffer) => In; serve?: Serve<In, Buffer | void>; encode?: undefined },
): OpcodeRow;
function reply(
  row: RowShape & { decode?: (body: Buffer) => unknown; serve?: unknown; encode?: unknown },
): OpcodeRow {
  return makeRow(row, false, row.decode, row.serve, row.encode);
}

function notice<In>(row: RowShape & { decode: (body: Buffer) => In; serve?: Notice<In> }): OpcodeRow;
function notice(row: RowShape): OpcodeRow;
function notice(row: RowShape & { decode?: (body: Buffer) => unknown; serve?: unknown }): OpcodeRow {
  return makeRow(row, true, row.decode, row.serve, undefined);
}

function nosys(): never {
  throw new FuseError(C.ENOSYS);
}

function fail(errno: number): () => never {
  return () => {
    throw new FuseError(errno);
  };
}

/** GETXATTR/LISTXATTR: size 0 asks for the length, a smaller buffer than the value is ERANGE. */
function sized(value: Buffer, size: number): Buffer {
  if (size === 0) return encodeGetxattrOut({ size: value.length });
  if (size < value.length) throw new FuseError(C.ERANGE);
  return value;
}

const ROWS: [number, OpcodeRow][] = [
  [
    C.FUSE_LOOKUP,
    reply({
      name: 'LOOKUP',
      inSize: 0,
      names: 1,
      serve: (s, c, _i, n) => (s.fs.lookup ? s.fs.lookup(c, c.header.nodeid, n[0]) : nosys()),
      encode: encodeEntryOut,
    }),
  ],
  [
    C.FUSE_FORGET,
    notice({
      name: 'FORGET',
      inSize: FUSE_FORGET_IN_SIZE,
      names: 0,
      decode: decodeForgetIn,
      serve: (s, h, inp) => s.fs.forget?.(h.nodeid, inp.nlookup),
    }),
  ],
  [
    C.FUSE_GETATTR,
    reply({
      name: 'GETATTR',
      inSize: FUSE_GETATTR_IN_SIZE,
      names: 0,
      decode: decodeGetattrIn,
      serve: (s, c, inp) => (s.fs.getattr ? s.fs.getattr(c, c.header.nodeid, inp) : nosys()),
      encode: encodeAttrOut,
    }),
  ],
  [C.FUSE_SETATTR, reply({ name: 'SETATTR', inSize: 88, names: 0, mutating: true })],
  [
    C.FUSE_READLINK,
    reply({
      name: 'READLINK',
      inSize: 0,
      names: 0,
      serve: (s, c) => (s.fs.readlink ? s.fs.readlink(c, c.header.nodeid) : nosys()),
    }),
  ],
  [C.FUSE_SYMLINK, reply({ name: 'SYMLINK', inSize: 0, names: 2, mutating: true })],
  [C.FUSE_MKNOD, reply({ name: 'MKNOD', inSize: 8, names: 1, mutating: true })],
  [C.FUSE_MKDIR, reply({ name: 'MKDIR', inSize: 8, names: 1, mutating: true })],
  [C.FUSE_UNLINK, reply({ name: 'UNLINK', inSize: 0, names: 1, mutating: true })],
  [C.FUSE_RMDIR, reply({ name: 'RMDIR', inSize: 0, names: 1, mutating: true })],
  [C.FUSE_RENAME, reply({ name: 'RENAME', inSize: 8, names: 2, mutating: true })],
  [C.FUSE_LINK, reply({ name: 'LINK', inSize: 8, names: 1, mutating: true })],
  [
    C.FUSE_OPEN,
    reply({
      name: 'OPEN',
      inSize: FUSE_OPEN_IN_SIZE,
      names: 0,
      decode: decodeOpenIn,
      serve: (s, c, inp) => (s.fs.open ? s.fs.open(c, c.header.nodeid, inp) : nosys()),
      encode: encodeOpenOut,
    }),
  ],
  [
    C.FUSE_READ,
    reply({
      name: 'READ',
      inSize: FUSE_READ_IN_SIZE,
      names: 0,
      decode: decodeReadIn,
      serve: (s, c, inp) => (s.fs.read ? s.fs.read(c, c.header.nodeid, inp) : nosys()),
    }),
  ],
  [C.FUSE_WRITE, reply({ name: 'WRITE', inSize: 24, names: 0, mutating: true })],
  [
    C.FUSE_STATFS,
    reply({
      name: 'STATFS',
      inSize: 0,
      names: 0,
      serve: (s, c) => (s.fs.statfs ? s.fs.statfs(c, c.header.nodeid) : nosys()),
      encode: encodeStatfsOut,
    }),
  ],
  [
    C.FUSE_RELEASE,
    reply({
      name: 'RELEASE',
      inSize: FUSE_RELEASE_IN_SIZE,
      names: 0,
      decode: decodeReleaseIn,
      serve: (s, c, inp) => s.fs.release?.(c, c.header.nodeid, inp),
    }),
  ],
  // Nothing to sync on a read-only image: without a handler, ENOSYS makes the kernel stop asking
  // and succeed.
  [C.FUSE_FSYNC, reply({ name: 'FSYNC', inSize: FUSE_FSYNC_IN_SIZE, names: 0 })],
  [
    C.FUSE_SETXATTR,
    reply({ name: 'SETXATTR', inSize: FUSE_COMPAT_SETXATTR_IN_SIZE, names: 1, mutating: true }),
  ],
  [
    C.FUSE_GETXATTR,
    reply({
      name: 'GETXATTR',
      inSize: FUSE_GETXATTR_IN_SIZE,
      names: 1,
      decode: decodeGetxattrIn,
      // The reply is the value or, for a size probe, a fuse_getxattr_out: sized() encodes.
      serve: (s, c, inp, n) => {
        if (!s.fs.getxattr) return nosys();
        const value = s.fs.getxattr(c, c.header.nodeid, n[0].toString());
        return value instanceof Promise ? value.then((v) => sized(v, inp.size)) : sized(value, inp.size);
      },
    }),
  ],
  [
    C.FUSE_LISTXATTR,
    reply({
      name: 'LISTXATTR',
      inSize: FUSE_GETXATTR_IN_SIZE,
      names: 0,
      decode: decodeGetxattrIn,
      serve: (s, c, inp) => {
        if (!s.fs.listxattr) return nosys();
        const list = s.fs.listxattr(c, c.header.nodeid);
        return list instanceof Promise
          ? list.then((l) => sized(encodeXattrNames(l), inp.size))
          : sized(encodeXattrNames(list), inp.size);
      },
    }),
  ],
  [C.FUSE_REMOVEXATTR, reply({ name: 'REMOVEXATTR', inSize: 0, names: 1, mutating: true })],
  [
    C.FUSE_FLUSH,
    reply({
      name: 'FLUSH',
      inSize: FUSE_FLUSH_IN_SIZE,
      names: 0,
      decode: decodeFlushIn,
      serve: (s, c, inp) => s.fs.flush?.(c, c.header.nodeid, inp),
    }),
  ],
  [
    C.FUSE_INIT,
    reply({
      name: 'INIT',
      inSize: FUSE_COMPAT_INIT_IN_SIZE,
      names: 0,
      decode: decodeInitIn,
      serve: (s, _c, inp) => s.negotiate(inp),
      encode: (r) => encodeInitOut(r.out, r.size),
    }),
  ],
  [
    C.FUSE_OPENDIR,
    reply({
      name: 'OPENDIR',
      inSize: FUSE_OPEN_IN_SIZE,
      names: 0,
      decode: decodeOpenIn,
      serve: (s, c, inp) => {
        // Refused once, the kernel stops sending OPENDIR/RELEASEDIR for good (see protocol.ts).
        if (s.info && s.info.flags & C.FUSE_NO_OPENDIR_SUPPORT) return nosys();
        return s.fs.opendir ? s.fs.opendir(c, c.header.nodeid, inp) : nosys();
      },
      encode: encodeOpenOut,
    }),
  ],
  [
    C.FUSE_READDIR,
    reply({
      name: 'READDIR',
      inSize: FUSE_READ_IN_SIZE,
      names: 0,
      decode: decodeReadIn,
      serve: (s, c, inp) => (s.fs.readdir ? s.fs.readdir(c, c.header.nodeid, inp) : nosys()),
    }),
  ],
  [
    C.FUSE_RELEASEDIR,
    reply({
      name: 'RELEASEDIR',
      inSize: FUSE_RELEASE_IN_SIZE,
      names: 0,
      decode: decodeReleaseIn,
      serve: (s, c, inp) => s.fs.releasedir?.(c, c.header.nodeid, inp),
    }),
  ],
  [C.FUSE_FSYNCDIR, reply({ name: 'FSYNCDIR', inSize: FUSE_FSYNC_IN_SIZE, names: 0 })],
  // No handler (ENOSYS): the kernel falls back to local locks, no bmap, its default poll mask,
  // GETATTR instead of STATX.
  [C.FUSE_GETLK, reply({ name: 'GETLK', inSize: 48, names: 0 })],
  [C.FUSE_SETLK, reply({ name: 'SETLK', inSize: 48, names: 0 })],
  [C.FUSE_SETLKW, reply({ name: 'SETLKW', inSize: 48, names: 0 })],
  [
    C.FUSE_ACCESS,
    reply({
      name: 'ACCESS',
      inSize: FUSE_ACCESS_IN_SIZE,
      names: 0,
      decode: decodeAccessIn,
      serve: (s, c, inp) => (s.fs.access ? s.fs.access(c, c.header.nodeid, inp.mask) : nosys()),
    }),
  ],
  [C.FUSE_CREATE, reply({ name: 'CREATE', inSize: 16, names: 1, mutating: true })],
  [
    C.FUSE_INTERRUPT,
    notice({
      name: 'INTERRUPT',
      inSize: FUSE_INTERRUPT_IN_SIZE,
      names: 0,
      decode: decodeInterruptIn,
      serve: (s, _h, inp) => s.interruptRequest(inp.unique),
    }),
  ],
  [C.FUSE_BMAP, reply({ name: 'BMAP', inSize: 16, names: 0 })],
  [
    C.FUSE_DESTROY,
    reply({ name: 'DESTROY', inSize: 0, names: 0, serve: (s, c) => s.destroySession(c.header.unique) }),
  ],
  [C.FUSE_IOCTL, reply({ name: 'IOCTL', inSize: 32, names: 0, serve: fail(C.ENOTTY) })],
  [C.FUSE_POLL, reply({ name: 'POLL', inSize: 24, names: 0 })],
  [C.FUSE_NOTIFY_REPLY, notice({ name: 'NOTIFY_REPLY', inSize: 0, names: 0 })],
  [
    C.FUSE_BATCH_FORGET,
    notice({
      name: 'BATCH_FORGET',
      inSize: FUSE_BATCH_FORGET_IN_SIZE,
      names: 0,
      decode: decodeBatchForgetIn,
      serve: (s, _h, list) => {
        for (const one of list) s.fs.forget?.(one.nodeid, one.nlookup);
      },
    }),
  ],
  [C.FUSE_FALLOCATE, reply({ name: 'FALLOCATE', inSize: 32, names: 0, mutating: true })],
  [
    C.FUSE_READDIRPLUS,
    reply({
      name: 'READDIRPLUS',
      inSize: FUSE_READ_IN_SIZE,
      names: 0,
      decode: decodeReadIn,
      serve: (s, c, inp) => (s.fs.readdirplus ? s.fs.readdirplus(c, c.header.nodeid, inp) : nosys()),
    }),
  ],
  [C.FUSE_RENAME2, reply({ name: 'RENAME2', inSize: 16, names: 2, mutating: true })],
  [
    C.FUSE_LSEEK,
    reply({
      name: 'LSEEK',
      inSize: FUSE_LSEEK_IN_SIZE,
      names: 0,
      decode: decodeLseekIn,
      serve: (s, c, inp) => (s.fs.lseek ? s.fs.lseek(c, c.header.nodeid, inp) : nosys()),
      encode: (offset: number) => encodeLseekOut({ offset }),
    }),
  ],
  [C.FUSE_COPY_FILE_RANGE, reply({ name: 'COPY_FILE_RANGE', inSize: 56, names: 0, mutating: true })],
  [C.FUSE_SETUPMAPPING, reply({ name: 'SETUPMAPPING', inSize: 40, names: 0 })],
  [C.FUSE_REMOVEMAPPING, reply({ name: 'REMOVEMAPPING', inSize: 4, names: 0 })],
  [C.FUSE_SYNCFS, reply({ name: 'SYNCFS', inSize: 8, names: 0, serve: () => undefined })],
  [C.FUSE_TMPFILE, reply({ name: 'TMPFILE', inSize: 16, names: 1, mutating: true })],
  [C.FUSE_STATX, reply({ name: 'STATX', inSize: 24, names: 0 })],
  [C.FUSE_COPY_FILE_RANGE_64, reply({ name: 'COPY_FILE_RANGE_64', inSize: 56, names: 0, mutating: true })],
];

export const OPCODES: ReadonlyMap<number, OpcodeRow> = new Map(ROWS);

/** The same rows indexed by opcode (every one is small): an array load per request, not a hash. */
const BY_OPCODE: (OpcodeRow | undefined)[] = Array.from(
  { length: Math.max(...OPCODES.keys()) + 1 },
  (_, opcode) => OPCODES.get(opcode),
);

/** The row for a request's opcode; undefined for one we do not know (ENOSYS). */
export function opcodeRow(opcode: number): OpcodeRow | undefined {
  return opcode < BY_OPCODE.length ? BY_OPCODE[opcode] : undefined;
}

export function opcodeName(opcode: number): string {
  return opcodeRow(opcode)?.name ?? `OPCODE_${opcode}`;
}
