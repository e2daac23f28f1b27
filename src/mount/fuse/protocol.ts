// FuseProtocol: bytes in, bytes out, no device. session.ts (the /dev/fuse loop on native reader
// threads) calls handleRequest for each message and writes the returned reply in one write; null
// means the kernel expects no reply. Every message is checked against its opcodes.ts row before
// dispatch, every failure becomes an errno reply, and nothing a request contains can make
// handleRequest throw.
import { EventEmitter } from 'node:events';
import * as C from './constants.js';
import { FuseError } from './errors.js';
import { InflightRequests, RequestRecord } from './inflight.js';
import { opcodeName, opcodeRow, type InitReply, type OpcodeServer, type ReplyRow } from './opcodes.js';
import type { Awaitable, InitInfo, RawFileSystem, RequestContext } from './raw.js';
import type { FastPathHandle } from '../../native-addon.js';
import {
  FUSE_IN_HEADER_SIZE,
  decodeInHeader,
  decodeNames,
  encodeErrorReply,
  encodeReply,
  peekUnique,
  type FuseInHeader,
  type FuseUnique,
} from './wire/header.js';
import { FUSE_COMPAT_INIT_OUT_SIZE, initOutSize, type FuseInitIn, type FuseInitOut } from './wire/init.js';

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
/** A reply body as a row without an encoder gets it from its handler. */
type Body = Buffer | undefined;

/** EIO for a message too broken to decode, when it has a unique id to answer to. */
function eioFor(req: Buffer): Buffer | null {
  const unique = peekUnique(req);
  return unique === undefined ? null : encodeErrorReply(unique, C.EIO);
}

/**
 * Events: 'init' (InitInfo) once INIT is answered; 'destroy' () when the kernel sends DESTROY;
 * 'warn' (FuseWarning).
 */
export class FuseProtocol extends EventEmitter implements OpcodeServer {
  readonly fs: RawFileSystem;
  private readonly backing?: BackingCapability;
  private readonly maxPages: number;
  private initInfo?: InitInfo;
  private destroyed = false;
  /** Requests answered asynchronously, so INTERRUPT can answer them EINTR. */
  private readonly inflight = new InflightRequests();

  constructor(fs: RawFileSystem, options: FuseProtocolOptions = {}) {
    super();
    this.fs = fs;
    this.backing = options.backing;
    this.maxPages = options.maxPages ?? 256;
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
      return eioFor(req);
    }
  }

  async handleRequest(req: Buffer): Promise<Buffer | null> {
    return this.handle(req);
  }

  private process(req: Buffer): Buffer | null | Promise<Buffer> {
    if (req.length < FUSE_IN_HEADER_SIZE) {
      // Without a whole header there may be no unique id to answer to.
      return eioFor(req);
    }
    const header = decodeInHeader(req);
    const row = opcodeRow(header.opcode);
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
    if (row.noReply) {
      row.serve?.(this, header, row.decode?.(body));
      return null;
    }
    if (!this.initInfo && header.opcode !== C.FUSE_INIT) return encodeErrorReply(header.unique, C.EIO);
    if (row.mutating) return encodeErrorReply(header.unique, C.EROFS);
    if (!row.serve) return encodeErrorReply(header.unique, C.ENOSYS);
    return this.dispatch(header, row, row.serve, body, names);
  }

  /** Decoder, handler and encoder of the row, in that order; synchronous while the handler is. */
  private dispatch(
    header: FuseInHeader,
    row: ReplyRow,
    serve: NonNullable<ReplyRow['serve']>,
    body: Buffer,
    names: Buffer[],
  ): Buffer | Promise<Buffer> {
    const record = new RequestRecord(header);
    const encode = row.encode;
    let out: Awaitable<unknown>;
    try {
      out = serve(this, record, row.decode?.(body), names);
      // Without an encoder the handler returned the body itself (bytes or nothing): opcodes.ts.
      if (!(out instanceof Promise)) return encodeReply(header.unique, encode ? encode(out) : (out as Body));
    } catch (error) {
      return this.failure(record, error);
    }
    return this.inflight.track(record, encode ? out.then(encode) : (out as Promise<Body>), this.fail);
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

  /** The filesystem's native fast path, and when it may start answering: once INIT is answered
   * (every other request before INIT is this server's EIO). session.ts asks for it. */
  nativeFastPath(): { handle: FastPathHandle; ready(start: () => void): void } | undefined {
    const handle = this.fs.nativeFastPath?.();
    if (!handle) return undefined;
    return {
      handle,
      ready: (start) => {
        if (this.initInfo) start();
        else this.once('init', start);
      },
    };
  }

  /** @internal INIT (opcodes.ts). */
  negotiate(inp: FuseInitIn): InitReply {
    if (inp.major > C.FUSE_KERNEL_VERSION) {
      // Tell a newer kernel which major we speak; it sends INIT again.
      const out = this.initOut(C.FUSE_KERNEL_MINOR_VERSION, 0n, 0, false);
      return { out, size: FUSE_COMPAT_INIT_OUT_SIZE };
    }
    if (inp.major < C.FUSE_KERNEL_VERSION || inp.minor < C.FUSE_MIN_MINOR_VERSION) {
      throw new FuseError(C.EPROTO);
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
    return { out, size: initOutSize(minor) };
  }

  /**
   * Serve a session whose INIT an earlier server answered (a /dev/fuse fd taken over after a
   * daemon restart): the kernel will not send INIT again, so settle what this server would have
   * agreed to — passthrough when it has a backing capability (a BACKING_OPEN the connection did not
   * negotiate fails, and the bridge then serves reads itself). An INIT that does arrive (the
   * earlier server died before answering it, and it was resent) still negotiates as usual.
   */
  adopt(minor: number = C.FUSE_KERNEL_MINOR_VERSION): InitInfo {
    const flags = WANTED_FLAGS | (this.backing ? C.FUSE_PASSTHROUGH : 0n);
    const maxPages = this.maxPages;
    const out = this.initOut(minor, flags, 0, this.backing !== undefined);
    this.initInfo = {
      major: C.FUSE_KERNEL_VERSION,
      minor,
      kernelFlags: flags,
      flags,
      maxReadahead: out.max_readahead,
      maxWrite: out.max_write,
      maxPages,
      passthrough: this.backing !== undefined,
    };
    this.destroyed = false;
    this.fs.init?.(this.initInfo);
    return this.initInfo;
  }

  /** @internal INTERRUPT (opcodes.ts). */
  interruptRequest(unique: FuseUnique): void {
    this.inflight.interrupt(unique);
  }

  private initOut(minor: number, flags: bigint, maxReadahead: number, passthrough: boolean): FuseInitOut {
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

  /** @internal DESTROY (opcodes.ts). */
  destroySession(self: FuseUnique): void {
    this.inflight.interruptAll(self);
    this.fs.destroy?.();
    this.destroyed = true;
    this.emit('destroy');
  }
}
