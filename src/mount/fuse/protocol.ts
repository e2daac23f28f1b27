// FuseProtocol: bytes in, bytes out, no device. session.ts (the /dev/fuse loop on native reader
// threads) calls handleRequest for each message and writes the returned reply in one write; null
// means the kernel expects no reply. Every message is checked against its opcodes.ts row before
// dispatch, every failure becomes an errno reply, and nothing a request contains can make
// handleRequest throw.
import { EventEmitter } from 'node:events';
import * as C from './constants.js';
import { FuseError } from './errors.js';
import { OPCODES, opcodeName } from './opcodes.js';
import type { InitInfo, RawFileSystem, RequestContext } from './raw.js';
import { decodeAccessIn, decodeGetattrIn, encodeAttrOut, encodeEntryOut } from './wire/attr.js';
import { decodeBatchForgetIn, decodeForgetIn } from './wire/forget.js';
import {
  FUSE_IN_HEADER_SIZE,
  decodeInHeader,
  decodeNames,
  encodeErrorReply,
  encodeReply,
  type FuseInHeader,
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
  C.FUSE_INIT_EXT;
const PAGE_SIZE = 4096;

type Handler = (ctx: RequestContext, body: Buffer, names: Buffer[]) => Promise<Buffer | undefined>;

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
  /** In-flight requests by unique id, so INTERRUPT can abort them. */
  private readonly inflight = new Map<bigint, AbortController>();
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

  /** The name session.ts calls. */
  handle(req: Buffer): Promise<Buffer | null> {
    return this.handleRequest(req);
  }

  async handleRequest(req: Buffer): Promise<Buffer | null> {
    try {
      return await this.process(req);
    } catch (error) {
      // Only reachable through a bug in this file: still never take the session down.
      this.emit('warn', {
        code: 'handler-failed',
        opcode: 'unknown',
        nodeid: 0,
        error,
      } satisfies FuseWarning);
      return req.length >= 16 ? encodeErrorReply(req.readBigUInt64LE(8), C.EIO) : null;
    }
  }

  private async process(req: Buffer): Promise<Buffer | null> {
    if (req.length < FUSE_IN_HEADER_SIZE) {
      // Without a whole header there may be no unique id to answer to.
      return req.length >= 16 ? encodeErrorReply(req.readBigUInt64LE(8), C.EIO) : null;
    }
    const header = decodeInHeader(req);
    const row = OPCODES.get(header.opcode);
    if (header.len < FUSE_IN_HEADER_SIZE || header.len > req.length) {
      return row?.noReply ? null : encodeErrorReply(header.unique, C.EIO);
    }
    if (!row) return encodeErrorReply(header.unique, C.ENOSYS);
    const payload = req.subarray(FUSE_IN_HEADER_SIZE, header.len);
    const split = decodeNames(payload.subarray(row.inSize), row.names);
    if (payload.length < row.inSize || !split)
      return row.noReply ? null : encodeErrorReply(header.unique, C.EIO);
    const body = payload;
    if (header.opcode === C.FUSE_INIT) return this.init(header, body);
    if (row.noReply) {
      this.noReply(header, body);
      return null;
    }
    if (!this.initInfo) return encodeErrorReply(header.unique, C.EIO);
    if (row.mutating) return encodeErrorReply(header.unique, C.EROFS);
    const handler = this.handlers.get(header.opcode);
    if (!handler) return encodeErrorReply(header.unique, C.ENOSYS);
    return this.dispatch(header, handler, body, split.names);
  }

  private async dispatch(
    header: FuseInHeader,
    handler: Handler,
    body: Buffer,
    names: Buffer[],
  ): Promise<Buffer> {
    const controller = new AbortController();
    this.inflight.set(header.unique, controller);
    const interrupted = new Promise<Buffer>((resolve) => {
      controller.signal.addEventListener('abort', () => resolve(encodeErrorReply(header.unique, C.EINTR)), {
        once: true,
      });
    });
    const work = (async () => {
      try {
        return encodeReply(header.unique, await handler({ header, signal: controller.signal }, body, names));
      } catch (error) {
        if (error instanceof FuseError) return encodeErrorReply(header.unique, error.errno);
        this.emit('warn', {
          code: 'handler-failed',
          opcode: opcodeName(header.opcode),
          nodeid: header.nodeid,
          error,
        } satisfies FuseWarning);
        return encodeErrorReply(header.unique, C.EIO);
      }
    })();
    try {
      return await Promise.race([work, interrupted]);
    } finally {
      this.inflight.delete(header.unique);
    }
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
        this.inflight.get(decodeInterruptIn(body).unique)?.abort();
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

  private destroy(self: bigint): void {
    for (const [unique, controller] of this.inflight) if (unique !== self) controller.abort();
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
    const errno = (e: number) => async (): Promise<Buffer> => {
      throw new FuseError(e);
    };
    const id = (ctx: RequestContext) => ctx.header.nodeid;
    const sized = (value: Buffer, size: number): Buffer => {
      if (size === 0) return encodeGetxattrOut({ size: value.length });
      if (size < value.length) throw new FuseError(C.ERANGE);
      return value;
    };
    const list: [number, Handler][] = [
      [C.FUSE_LOOKUP, async (c, _b, n) => encodeEntryOut(await need('lookup')(c, id(c), n[0]))],
      [C.FUSE_GETATTR, async (c, b) => encodeAttrOut(await need('getattr')(c, id(c), decodeGetattrIn(b)))],
      [C.FUSE_READLINK, async (c) => need('readlink')(c, id(c))],
      [C.FUSE_OPEN, async (c, b) => encodeOpenOut(await need('open')(c, id(c), decodeOpenIn(b)))],
      [C.FUSE_READ, async (c, b) => need('read')(c, id(c), decodeReadIn(b))],
      [C.FUSE_RELEASE, async (c, b) => void (await fs.release?.(c, id(c), decodeReleaseIn(b)))],
      [C.FUSE_FLUSH, async (c, b) => void (await fs.flush?.(c, id(c), decodeFlushIn(b)))],
      [C.FUSE_OPENDIR, async (c, b) => encodeOpenOut(await need('opendir')(c, id(c), decodeOpenIn(b)))],
      [C.FUSE_READDIR, async (c, b) => need('readdir')(c, id(c), decodeReadIn(b))],
      [C.FUSE_READDIRPLUS, async (c, b) => need('readdirplus')(c, id(c), decodeReadIn(b))],
      [C.FUSE_RELEASEDIR, async (c, b) => void (await fs.releasedir?.(c, id(c), decodeReleaseIn(b)))],
      [C.FUSE_STATFS, async (c) => encodeStatfsOut(await need('statfs')(c, id(c)))],
      [C.FUSE_ACCESS, async (c, b) => void (await need('access')(c, id(c), decodeAccessIn(b).mask))],
      [
        C.FUSE_LSEEK,
        async (c, b) => encodeLseekOut({ offset: await need('lseek')(c, id(c), decodeLseekIn(b)) }),
      ],
      [
        C.FUSE_GETXATTR,
        async (c, b, n) => sized(await need('getxattr')(c, id(c), n[0].toString()), decodeGetxattrIn(b).size),
      ],
      [
        C.FUSE_LISTXATTR,
        async (c, b) => sized(encodeXattrNames(await need('listxattr')(c, id(c))), decodeGetxattrIn(b).size),
      ],
      [C.FUSE_DESTROY, async (c) => void this.destroy(c.header.unique)],
      // Nothing to sync on a read-only image; ENOSYS makes the kernel stop asking and succeed.
      [C.FUSE_FSYNC, errno(C.ENOSYS)],
      [C.FUSE_FSYNCDIR, errno(C.ENOSYS)],
      [C.FUSE_SYNCFS, async () => undefined],
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
