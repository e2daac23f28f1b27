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
  type FuseAccessIn,
  type FuseGetattrIn,
} from './wire/attr.js';
import {
  decodeBatchForgetIn,
  decodeForgetIn,
  FUSE_BATCH_FORGET_IN_SIZE,
  FUSE_FORGET_IN_SIZE,
  type FuseForgetIn,
  type FuseForgetOne,
} from './wire/forget.js';
import type { FuseInHeader, FuseUnique } from './wire/header.js';
import {
  decodeInitIn,
  encodeInitOut,
  FUSE_COMPAT_INIT_IN_SIZE,
  type FuseInitIn,
  type FuseInitOut,
} from './wire/init.js';
import { decodeInterruptIn, FUSE_INTERRUPT_IN_SIZE, type FuseInterruptIn } from './wire/interrupt.js';
import { decodeLseekIn, encodeLseekOut, FUSE_LSEEK_IN_SIZE, type FuseLseekIn } from './wire/lseek.js';
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
  type FuseFlushIn,
  type FuseOpenIn,
  type FuseOpenOut,
  type FuseReadIn,
  type FuseReleaseIn,
} from './wire/open.js';
import { encodeStatfsOut } from './wire/statfs.js';
import {
  decodeGetxattrIn,
  encodeGetxattrOut,
  encodeXattrNames,
  FUSE_COMPAT_SETXATTR_IN_SIZE,
  FUSE_GETXATTR_IN_SIZE,
  type FuseGetxattrIn,
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

type Decoder<In> = (body: Buffer) => In;

/** Every row has the same properties in the same order: one object shape for every lookup. */
function makeRow(
  name: string,
  inSize: number,
  names: number,
  noReply: boolean,
  mutating: boolean,
  decode: Decoder<unknown> | undefined,
  serve: unknown,
  encode: unknown,
): OpcodeRow {
  // The erasure: the overloads of reply() and notice() typed these columns against each other.
  return { name, inSize, names, noReply, mutating, decode, serve, encode } as OpcodeRow;
}

/** A row whose reply body is encode(result), or the handler's result itself without an encoder. */
function reply<In, Out>(
  name: string,
  inSize: number,
  names: number,
  decode: Decoder<In> | undefined,
  serve: Serve<In, Out>,
  encode: (out: Out) => Buffer,
): OpcodeRow;
function reply<In>(
  name: string,
  inSize: number,
  names: number,
  decode?: Decoder<In>,
  serve?: Serve<In, Buffer | void>,
): OpcodeRow;
function reply(
  name: string,
  inSize: number,
  names: number,
  decode?: Decoder<unknown>,
  serve?: unknown,
  encode?: unknown,
): OpcodeRow {
  return makeRow(name, inSize, names, false, false, decode, serve, encode);
}

/** A row answered EROFS before dispatch: it needs no decoder, handler or encoder. */
function mutating(name: string, inSize: number, names: number): OpcodeRow {
  return makeRow(name, inSize, names, false, true, undefined, undefined, undefined);
}

/** A row the kernel expects no reply to. */
function notice<In>(name: string, inSize: number, decode?: Decoder<In>, serve?: Notice<In>): OpcodeRow {
  return makeRow(name, inSize, 0, true, false, decode, serve, undefined);
}

function nosys(): never {
  throw new FuseError(C.ENOSYS);
}

/** GETXATTR/LISTXATTR: size 0 asks for the length, a smaller buffer than the value is ERANGE. */
function sized(value: Buffer, size: number): Buffer {
  if (size === 0) return encodeGetxattrOut({ size: value.length });
  if (size < value.length) throw new FuseError(C.ERANGE);
  return value;
}

// The handlers: each calls the filesystem method of its opcode (ENOSYS when there is none).
type Ctx = RequestContext;
const lookup = (s: OpcodeServer, c: Ctx, _: unknown, n: Buffer[]) =>
  s.fs.lookup ? s.fs.lookup(c, c.header.nodeid, n[0]) : nosys();
const getattr = (s: OpcodeServer, c: Ctx, inp: FuseGetattrIn) =>
  s.fs.getattr ? s.fs.getattr(c, c.header.nodeid, inp) : nosys();
const readlink = (s: OpcodeServer, c: Ctx) => (s.fs.readlink ? s.fs.readlink(c, c.header.nodeid) : nosys());
const open = (s: OpcodeServer, c: Ctx, inp: FuseOpenIn) =>
  s.fs.open ? s.fs.open(c, c.header.nodeid, inp) : nosys();
const read = (s: OpcodeServer, c: Ctx, inp: FuseReadIn) =>
  s.fs.read ? s.fs.read(c, c.header.nodeid, inp) : nosys();
const statfs = (s: OpcodeServer, c: Ctx) => (s.fs.statfs ? s.fs.statfs(c, c.header.nodeid) : nosys());
// Without a method, RELEASE, RELEASEDIR and FLUSH still succeed: there is nothing to undo.
const release = (s: OpcodeServer, c: Ctx, inp: FuseReleaseIn) => s.fs.release?.(c, c.header.nodeid, inp);
const releasedir = (s: OpcodeServer, c: Ctx, inp: FuseReleaseIn) =>
  s.fs.releasedir?.(c, c.header.nodeid, inp);
const flush = (s: OpcodeServer, c: Ctx, inp: FuseFlushIn) => s.fs.flush?.(c, c.header.nodeid, inp);
// The reply is the value or, for a size probe, a fuse_getxattr_out: sized() encodes.
function getxattr(s: OpcodeServer, c: Ctx, inp: FuseGetxattrIn, n: Buffer[]): Awaitable<Buffer> {
  if (!s.fs.getxattr) return nosys();
  const value = s.fs.getxattr(c, c.header.nodeid, n[0].toString());
  return value instanceof Promise ? value.then((v) => sized(v, inp.size)) : sized(value, inp.size);
}
function listxattr(s: OpcodeServer, c: Ctx, inp: FuseGetxattrIn): Awaitable<Buffer> {
  if (!s.fs.listxattr) return nosys();
  const list = s.fs.listxattr(c, c.header.nodeid);
  if (list instanceof Promise) return list.then((l) => sized(encodeXattrNames(l), inp.size));
  return sized(encodeXattrNames(list), inp.size);
}
const init = (s: OpcodeServer, _: Ctx, inp: FuseInitIn) => s.negotiate(inp);
const encodeInit = (r: InitReply) => encodeInitOut(r.out, r.size);
function opendir(s: OpcodeServer, c: Ctx, inp: FuseOpenIn): Awaitable<FuseOpenOut> {
  // Refused once, the kernel stops sending OPENDIR/RELEASEDIR for good (see protocol.ts).
  if (s.info && s.info.flags & C.FUSE_NO_OPENDIR_SUPPORT) return nosys();
  return s.fs.opendir ? s.fs.opendir(c, c.header.nodeid, inp) : nosys();
}
const readdir = (s: OpcodeServer, c: Ctx, inp: FuseReadIn) =>
  s.fs.readdir ? s.fs.readdir(c, c.header.nodeid, inp) : nosys();
const readdirplus = (s: OpcodeServer, c: Ctx, inp: FuseReadIn) =>
  s.fs.readdirplus ? s.fs.readdirplus(c, c.header.nodeid, inp) : nosys();
const access = (s: OpcodeServer, c: Ctx, inp: FuseAccessIn) =>
  s.fs.access ? s.fs.access(c, c.header.nodeid, inp.mask) : nosys();
const lseek = (s: OpcodeServer, c: Ctx, inp: FuseLseekIn) =>
  s.fs.lseek ? s.fs.lseek(c, c.header.nodeid, inp) : nosys();
const encodeLseek = (offset: number) => encodeLseekOut({ offset });
const destroy = (s: OpcodeServer, c: Ctx) => s.destroySession(c.header.unique);
const ioctl = (): never => {
  throw new FuseError(C.ENOTTY);
};
const syncfs = (): void => undefined;
const forget = (s: OpcodeServer, h: FuseInHeader, inp: FuseForgetIn) => s.fs.forget?.(h.nodeid, inp.nlookup);
function batchForget(s: OpcodeServer, _: FuseInHeader, list: FuseForgetOne[]): void {
  for (const one of list) s.fs.forget?.(one.nodeid, one.nlookup);
}
const interrupt = (s: OpcodeServer, _: FuseInHeader, inp: FuseInterruptIn) => s.interruptRequest(inp.unique);

// A row without a handler answers ENOSYS. FSYNC, FSYNCDIR: nothing to sync on a read-only image,
// and ENOSYS makes the kernel stop asking and succeed. GETLK/SETLK/SETLKW, BMAP, POLL, STATX: the
// kernel falls back to local locks, no bmap, its default poll mask, GETATTR.
// prettier-ignore
const ROWS: [number, OpcodeRow][] = [
  // opcode, then name, input size, names, decoder, handler, encoder (mutating: EROFS; notice: no reply)
  [C.FUSE_LOOKUP,             reply('LOOKUP',                0,                            1, undefined,           lookup,      encodeEntryOut)],
  [C.FUSE_FORGET,             notice('FORGET',               FUSE_FORGET_IN_SIZE,             decodeForgetIn,      forget)],
  [C.FUSE_GETATTR,            reply('GETATTR',               FUSE_GETATTR_IN_SIZE,         0, decodeGetattrIn,     getattr,     encodeAttrOut)],
  [C.FUSE_SETATTR,            mutating('SETATTR',            88,                           0)],
  [C.FUSE_READLINK,           reply('READLINK',              0,                            0, undefined,           readlink)],
  [C.FUSE_SYMLINK,            mutating('SYMLINK',            0,                            2)],
  [C.FUSE_MKNOD,              mutating('MKNOD',              8,                            1)],
  [C.FUSE_MKDIR,              mutating('MKDIR',              8,                            1)],
  [C.FUSE_UNLINK,             mutating('UNLINK',             0,                            1)],
  [C.FUSE_RMDIR,              mutating('RMDIR',              0,                            1)],
  [C.FUSE_RENAME,             mutating('RENAME',             8,                            2)],
  [C.FUSE_LINK,               mutating('LINK',               8,                            1)],
  [C.FUSE_OPEN,               reply('OPEN',                  FUSE_OPEN_IN_SIZE,            0, decodeOpenIn,        open,        encodeOpenOut)],
  [C.FUSE_READ,               reply('READ',                  FUSE_READ_IN_SIZE,            0, decodeReadIn,        read)],
  [C.FUSE_WRITE,              mutating('WRITE',              24,                           0)],
  [C.FUSE_STATFS,             reply('STATFS',                0,                            0, undefined,           statfs,      encodeStatfsOut)],
  [C.FUSE_RELEASE,            reply('RELEASE',               FUSE_RELEASE_IN_SIZE,         0, decodeReleaseIn,     release)],
  [C.FUSE_FSYNC,              reply('FSYNC',                 FUSE_FSYNC_IN_SIZE,           0)],
  [C.FUSE_SETXATTR,           mutating('SETXATTR',           FUSE_COMPAT_SETXATTR_IN_SIZE, 1)],
  [C.FUSE_GETXATTR,           reply('GETXATTR',              FUSE_GETXATTR_IN_SIZE,        1, decodeGetxattrIn,    getxattr)],
  [C.FUSE_LISTXATTR,          reply('LISTXATTR',             FUSE_GETXATTR_IN_SIZE,        0, decodeGetxattrIn,    listxattr)],
  [C.FUSE_REMOVEXATTR,        mutating('REMOVEXATTR',        0,                            1)],
  [C.FUSE_FLUSH,              reply('FLUSH',                 FUSE_FLUSH_IN_SIZE,           0, decodeFlushIn,       flush)],
  [C.FUSE_INIT,               reply('INIT',                  FUSE_COMPAT_INIT_IN_SIZE,     0, decodeInitIn,        init,        encodeInit)],
  [C.FUSE_OPENDIR,            reply('OPENDIR',               FUSE_OPEN_IN_SIZE,            0, decodeOpenIn,        opendir,     encodeOpenOut)],
  [C.FUSE_READDIR,            reply('READDIR',               FUSE_READ_IN_SIZE,            0, decodeReadIn,        readdir)],
  [C.FUSE_RELEASEDIR,         reply('RELEASEDIR',            FUSE_RELEASE_IN_SIZE,         0, decodeReleaseIn,     releasedir)],
  [C.FUSE_FSYNCDIR,           reply('FSYNCDIR',              FUSE_FSYNC_IN_SIZE,           0)],
  [C.FUSE_GETLK,              reply('GETLK',                 48,                           0)],
  [C.FUSE_SETLK,              reply('SETLK',                 48,                           0)],
  [C.FUSE_SETLKW,             reply('SETLKW',                48,                           0)],
  [C.FUSE_ACCESS,             reply('ACCESS',                FUSE_ACCESS_IN_SIZE,          0, decodeAccessIn,      access)],
  [C.FUSE_CREATE,             mutating('CREATE',             16,                           1)],
  [C.FUSE_INTERRUPT,          notice('INTERRUPT',            FUSE_INTERRUPT_IN_SIZE,          decodeInterruptIn,   interrupt)],
  [C.FUSE_BMAP,               reply('BMAP',                  16,                           0)],
  [C.FUSE_DESTROY,            reply('DESTROY',               0,                            0, undefined,           destroy)],
  [C.FUSE_IOCTL,              reply('IOCTL',                 32,                           0, undefined,           ioctl)],
  [C.FUSE_POLL,               reply('POLL',                  24,                           0)],
  [C.FUSE_NOTIFY_REPLY,       notice('NOTIFY_REPLY',         0,                            )],
  [C.FUSE_BATCH_FORGET,       notice('BATCH_FORGET',         FUSE_BATCH_FORGET_IN_SIZE,       decodeBatchForgetIn, batchForget)],
  [C.FUSE_FALLOCATE,          mutating('FALLOCATE',          32,                           0)],
  [C.FUSE_READDIRPLUS,        reply('READDIRPLUS',           FUSE_READ_IN_SIZE,            0, decodeReadIn,        readdirplus)],
  [C.FUSE_RENAME2,            mutating('RENAME2',            16,                           2)],
  [C.FUSE_LSEEK,              reply('LSEEK',                 FUSE_LSEEK_IN_SIZE,           0, decodeLseekIn,       lseek,       encodeLseek)],
  [C.FUSE_COPY_FILE_RANGE,    mutating('COPY_FILE_RANGE',    56,                           0)],
  [C.FUSE_SETUPMAPPING,       reply('SETUPMAPPING',          40,                           0)],
  [C.FUSE_REMOVEMAPPING,      reply('REMOVEMAPPING',         4,                            0)],
  [C.FUSE_SYNCFS,             reply('SYNCFS',                8,                            0, undefined,           syncfs)],
  [C.FUSE_TMPFILE,            mutating('TMPFILE',            16,                           1)],
  [C.FUSE_STATX,              reply('STATX',                 24,                           0)],
  [C.FUSE_COPY_FILE_RANGE_64, mutating('COPY_FILE_RANGE_64', 56,                           0)],
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
