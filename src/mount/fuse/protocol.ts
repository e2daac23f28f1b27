// FuseProtocol: bytes in, bytes out, no device. session.ts (the /dev/fuse loop on native reader
// threads) calls handleRequest for each message and writes the returned reply in one write; null
// means the kernel expects no reply. Every message is checked against its opcodes.ts row before
// dispatch, every failure becomes an errno reply, and nothing a request contains can make
// handleRequest throw.
import { EventEmitter } from 'node:events';
import * as C from './constants.js';
import { FuseError } from './errors.js';
import { InflightRequests, RequestRecord } from './inflight.js';
import { OPCODES, opcodeName } from './opcodes.js';
import type { Awaitable, InitInfo, RawFileSystem, RequestContext } from './raw.js';
import { decodeAccessIn, decodeGetattrIn, encodeAttrOut, encodeEntryOut } from './wire/attr.js';
import { decodeBatchForgetIn, decodeForgetIn } from './wire/forget.js';
import {
  FUSE_IN_HEADER_SIZE,
  decodeInHeader,
  decodeNames,
  encodeErrorReply,
  encodeReply,
  readUnique,
  type FuseInHeader,
  type FuseUnique,
} from './wire/header.js';
import { decodeInitIn, encodeInitOut, FUSE_COMPAT_INIT_OUT_SIZE } from './wire/init.js';
import { decodeInterruptIn } from './wire/interrupt.js';
import { decodeLseekIn, encodeLseekOut } from './wire/lseek.js';
import { decodeFlushIn, decodeOpenIn, decodeReadIn, decodeReleaseIn, encodeOpenOut } from './wire/open.js';
import { encodeStatfsOut } from './wire/statfs.js';
import { decodeGetxattrIn, encodeGetxattrOut, encodeXattrNames } from './wire/xattr.js';

/** FUSE_DEV_IOC_BACKING_OPEN / BACKING_CLOSE on the session's /dev/fuse fd (native addon). */
export interface BackingCapability {
  open(fd: number): number;
  close(id: number): void;
}

export interface FuseProtocolOptions {
  /** Offer FUSE_PASSTHROUGH when the kernel does: the filesystem can then hand out backing ids. */
  backing?: BackingCapability;
  /** 256 pages = 1 MiB reads and readahead. */
  maxPages?: number;
}

/** Coded, recoverable problems ('warn' event): a handler failed and the request got EIO. */
export interface FuseWarning {
  code: 'handler-failed';
  opcode: string;
  nodeid: number;
  error: unknown;
}

const WANTED_FLAGS =
  C.FUSE_ASYNC_READ |
  C.FUSE_PARALLEL_DIROPS |
  C.FUSE_DO_READDIRPLUS |
  C.FUSE_READDIRPLUS_AUTO |
  C.FUSE_CACHE_SYMLINKS |
  C.FUSE_MAX_PAGES |
  C.FUSE_INIT_EXT |
  // OPENDIR answered ENOSYS once: the kernel stops sending OPENDIR/RELEASEDIR and caches every
  // directory's entries (FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR is its default then).
  C.FUSE_NO_OPENDIR_SUPPORT;
const PAGE_SIZE = 4096;
/** Shared by every request without names; handlers only read it. */
const NO_NAMES: Buffer[] = [];

type Handler = (ctx: RequestContext, body: Buffer, names: Buffer[]) => Awaitable<Buffer | undefined>;

/** Applies f now for a plain value, later for a promise: synchronous handlers stay synchronous. */
function then<T, R>(v: Awaitable<T>, f: (v: T) => R): Awaitable<R> {
  return v instanceof Promise ? v.then(f) : f(v);
}

/**
 * Events: 'init' (InitInfo) once INIT is answered; 'destroy' () when the kernel sends DESTROY;
 * 'warn' (FuseWarning).
 */
export class FuseProtocol extends EventEmitter {
  readonly fs: RawFileSystem;
  private readonly backing?: BackingCapability;
  private readonly maxPages: number;
  private initInfo?: InitInfo;
  private destroyed = false;
  /** Requests answered asynchronously, so INTERRUPT can answer them EINTR. */
  private readonly inflight = new InflightRequests();
  private readonly handlers: Map<number, Handler>;

  constructor(fs: RawFileSystem, options: FuseProtocolOptions = {}) {
    super();
    this.fs = fs;
    this.backing = options.backing;
    this.maxPages = options.maxPages ?? 256;
    this.handlers = this.buildHandlers();
  }

  get info(): InitInfo | undefined {
    return this.initInfo;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  /** The name session.ts calls: a plain reply when the handler answered synchronously (the common
   * case — no promise, no extra event-loop turn), a promise otherwise. Never throws or rejects. */
  handle(req: Buffer): Buffer | null | Promise<Buffer | null> {
    try {
      return this.process(req);
    } catch (error) {
      // Only reachable through a bug in this file: still never take the session down.
      this.emit('warn', {
        code: 'handler-failed',
        opcode: 'unknown',
        nodeid: 0,
        error,
      } satisfies FuseWarning);
      return req.length >= 16 ? encodeErrorReply(readUnique(req, 8), C.EIO) : null;
    }
  }

  async handleRequest(req: Buffer): Promise<Buffer | null> {
    return this.handle(req);
  }

  private process(req: Buffer): Buffer | null | Promise<Buffer> {
    if (req.length < FUSE_IN_HEADER_SIZE) {
      // Without a whole header there may be no unique id to answer to.
      return req.length >= 16 ? encodeErrorReply(readUnique(req, 8), C.EIO) : null;
    }
    const header = decodeInHeader(req);
    const row = OPCODES.get(header.opcode);
    if (header.len < FUSE_IN_HEADER_SIZE || header.len > req.length) {
      return row?.noReply ? null : encodeErrorReply(header.unique, C.EIO);
    }
    if (!row) return encodeErrorReply(header.unique, C.ENOSYS);
    const body = req.subarray(FUSE_IN_HEADER_SIZE, header.len);
    // Most requests carry no names: no split (an array, an object and a view per request) for them.
    const names =
      body.length < row.inSize
        ? undefined
        : row.names === 0
          ? NO_NAMES
          : decodeNames(body.subarray(row.inSize), row.names)?.names;
    if (!names) return row.noReply ? null : encodeErrorReply(header.unique, C.EIO);
    if (header.opcode === C.FUSE_INIT) return this.init(header, body);
    if (row.noReply) {
      this.noReply(header, body);
      return null;
    }
    if (!this.initInfo) return encodeErrorReply(header.unique, C.EIO);
    if (row.mutating) return encodeErrorReply(header.unique, C.EROFS);
    const handler = this.handlers.get(header.opcode);
    if (!handler) return encodeErrorReply(header.unique, C.ENOSYS);
    return this.dispatch(header, handler, body, names);
  }

  private dispatch(
    header: FuseInHeader,
    handler: Handler,
    body: Buffer,
    names: Buffer[],
  ): Buffer | Promise<Buffer> {
    const record = new RequestRecord(header);
    let out: Awaitable<Buffer | undefined>;
    try {
      out = handler(record, body, names);
    } catch (error) {
      return this.failure(record, error);
    }
    if (!(out instanceof Promise)) return encodeReply(header.unique, out);
    return this.inflight.track(record, out, this.fail);
  }

  /** failure() as a value made once, for InflightRequests.track. */
  private readonly fail = (record: RequestRecord, error: unknown): Buffer => this.failure(record, error);

  private failure({ header }: RequestContext, error: unknown): Buffer {
    if (error instanceof FuseError) return encodeErrorReply(header.unique, error.errno);
    this.emit('warn', {
      code: 'handler-failed',
      opcode: opcodeName(header.opcode),
      nodeid: header.nodeid,
      error,
    } satisfies FuseWarning);
    return encodeErrorReply(header.unique, C.EIO);
  }

  private noReply(header: FuseInHeader, body: Buffer): void {
    switch (header.opcode) {
      case C.FUSE_FORGET:
        this.fs.forget?.(header.nodeid, decodeForgetIn(body).nlookup);
        break;
      case C.FUSE_BATCH_FORGET:
        for (const one of decodeBatchForgetIn(body)) this.fs.forget?.(one.nodeid, one.nlookup);
        break;
      case C.FUSE_INTERRUPT:
        // Unknown or finished requests are ignored: the kernel gives up on them by itself.
        this.inflight.interrupt(decodeInterruptIn(body).unique);
        break;
      default:
        break;
    }
  }

  private init(header: FuseInHeader, body: Buffer): Buffer {
    const inp = decodeInitIn(body);
    if (inp.major > C.FUSE_KERNEL_VERSION) {
      // Tell a newer kernel which major we speak; it sends INIT again.
      const out = this.initOut(C.FUSE_KERNEL_MINOR_VERSION, 0n, 0, false);
      return encodeReply(header.unique, encodeInitOut(out, FUSE_COMPAT_INIT_OUT_SIZE));
    }
    if (inp.major < C.FUSE_KERNEL_VERSION || inp.minor < C.FUSE_MIN_MINOR_VERSION) {
      return encodeErrorReply(header.unique, C.EPROTO);
    }
    const minor = Math.min(inp.minor, C.FUSE_KERNEL_MINOR_VERSION);
    // flags2 means nothing unless the kernel set FUSE_INIT_EXT.
    const offered = inp.flags & C.FUSE_INIT_EXT ? inp.flags : inp.flags & 0xffffffffn;
    const wanted = WANTED_FLAGS | (this.backing ? C.FUSE_PASSTHROUGH : 0n);
    const flags = offered & wanted;
    const passthrough = (flags & C.FUSE_PASSTHROUGH) !== 0n;
    const maxPages = flags & C.FUSE_MAX_PAGES ? this.maxPages : 0;
    const out = this.initOut(minor, flags, inp.max_readahead, passthrough);
    this.initInfo = {
      major: C.FUSE_KERNEL_VERSION,
      minor,
      kernelFlags: inp.flags,
      flags,
      maxReadahead: out.max_readahead,
      maxWrite: out.max_write,
      maxPages,
      passthrough,
    };
    this.destroyed = false;
    this.fs.init?.(this.initInfo);
    this.emit('init', this.initInfo);
    return encodeReply(header.unique, encodeInitOut(out));
  }

  private initOut(minor: number, flags: bigint, maxReadahead: number, passthrough: boolean) {
    const maxPages = flags & C.FUSE_MAX_PAGES ? this.maxPages : 0;
    return {
      major: C.FUSE_KERNEL_VERSION,
      minor,
      max_readahead: maxReadahead,
      flags,
      max_background: 64,
      congestion_threshold: 48,
      max_write: Math.max(maxPages, 32) * PAGE_SIZE,
      time_gran: 1,
      max_pages: maxPages,
      map_alignment: 0,
      // A backing file on a plain filesystem (depth 0) keeps this mount at depth 1, so an
      // overlay can still be stacked on it.
      max_stack_depth: passthrough ? 1 : 0,
      request_timeout: 0,
    };
  }

  private destroy(self: FuseUnique): void {
    this.inflight.interruptAll(self);
    this.fs.destroy?.();
    this.destroyed = true;
    this.emit('destroy');
  }

  private buildHandlers(): Map<number, Handler> {
    const fs = this.fs;
    const need = <K extends keyof RawFileSystem>(k: K): NonNullable<RawFileSystem[K]> => {
      const fn = fs[k];
      if (!fn) throw new FuseError(C.ENOSYS);
      return fn.bind(fs) as NonNullable<RawFileSystem[K]>;
    };
    const errno = (e: number) => (): never => {
      throw new FuseError(e);
    };
    const id = (ctx: RequestContext) => ctx.header.nodeid;
    const sized = (value: Buffer, size: number): Buffer => {
      if (size === 0) return encodeGetxattrOut({ size: value.length });
      if (size < value.length) throw new FuseError(C.ERANGE);
      return value;
    };
    const none = (): undefined => undefined;
    const list: [number, Handler][] = [
      [C.FUSE_LOOKUP, (c, _b, n) => then(need('lookup')(c, id(c), n[0]), encodeEntryOut)],
      [C.FUSE_GETATTR, (c, b) => then(need('getattr')(c, id(c), decodeGetattrIn(b)), encodeAttrOut)],
      [C.FUSE_READLINK, (c) => need('readlink')(c, id(c))],
      [C.FUSE_OPEN, (c, b) => then(need('open')(c, id(c), decodeOpenIn(b)), encodeOpenOut)],
      [C.FUSE_READ, (c, b) => need('read')(c, id(c), decodeReadIn(b))],
      [C.FUSE_RELEASE, (c, b) => then(fs.release?.(c, id(c), decodeReleaseIn(b)), none)],
      [C.FUSE_FLUSH, (c, b) => then(fs.flush?.(c, id(c), decodeFlushIn(b)), none)],
      [
        C.FUSE_OPENDIR,
        (c, b) => {
          if (this.initInfo && this.initInfo.flags & C.FUSE_NO_OPENDIR_SUPPORT) throw new FuseError(C.ENOSYS);
          return then(need('opendir')(c, id(c), decodeOpenIn(b)), encodeOpenOut);
        },
      ],
      [C.FUSE_READDIR, (c, b) => need('readdir')(c, id(c), decodeReadIn(b))],
      [C.FUSE_READDIRPLUS, (c, b) => need('readdirplus')(c, id(c), decodeReadIn(b))],
      [C.FUSE_RELEASEDIR, (c, b) => then(fs.releasedir?.(c, id(c), decodeReleaseIn(b)), none)],
      [C.FUSE_STATFS, (c) => then(need('statfs')(c, id(c)), encodeStatfsOut)],
      [C.FUSE_ACCESS, (c, b) => then(need('access')(c, id(c), decodeAccessIn(b).mask), none)],
      [
        C.FUSE_LSEEK,
        (c, b) => then(need('lseek')(c, id(c), decodeLseekIn(b)), (offset) => encodeLseekOut({ offset })),
      ],
      [
        C.FUSE_GETXATTR,
        (c, b, n) =>
          then(need('getxattr')(c, id(c), n[0].toString()), (v) => sized(v, decodeGetxattrIn(b).size)),
      ],
      [
        C.FUSE_LISTXATTR,
        (c, b) =>
          then(need('listxattr')(c, id(c)), (v) => sized(encodeXattrNames(v), decodeGetxattrIn(b).size)),
      ],
      [C.FUSE_DESTROY, (c) => void this.destroy(c.header.unique)],
      // Nothing to sync on a read-only image; ENOSYS makes the kernel stop asking and succeed.
      [C.FUSE_FSYNC, errno(C.ENOSYS)],
      [C.FUSE_FSYNCDIR, errno(C.ENOSYS)],
      [C.FUSE_SYNCFS, none],
      // ENOSYS: the kernel falls back to its default poll mask, local locks, no bmap, GETATTR.
      [C.FUSE_POLL, errno(C.ENOSYS)],
      [C.FUSE_GETLK, errno(C.ENOSYS)],
      [C.FUSE_SETLK, errno(C.ENOSYS)],
      [C.FUSE_SETLKW, errno(C.ENOSYS)],
      [C.FUSE_BMAP, errno(C.ENOSYS)],
      [C.FUSE_STATX, errno(C.ENOSYS)],
      [C.FUSE_IOCTL, errno(C.ENOTTY)],
    ];
    return new Map(list);
  }
}
