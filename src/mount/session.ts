// One FUSE session: owns a /dev/fuse fd, reads requests natively (polled on the JS thread by
// default, or on a reader thread; never on libuv's pool), hands each to a handler and writes each
// reply in one write(2). The session knows only
// the 16-byte headers it needs to answer EIO when the handler fails; the protocol itself lives
// behind the handler (src/mount/fuse/protocol.ts).
import { EventEmitter } from 'node:events';
import { closeSync, writeSync } from 'node:fs';

import { isErrno } from '../errors.js';
import { native, type FastPathHandle } from '../native-addon.js';
import { EIO, FUSE_BATCH_FORGET, FUSE_FORGET, FUSE_NOTIFY_RESEND } from './fuse/constants.js';
import { recycleReply } from './fuse/reply-pool.js';
import {
  encodeErrorReply,
  FUSE_IN_HEADER_SIZE,
  peekUnique,
  readUnique,
  type FuseUnique,
} from './fuse/wire/header.js';

export interface FuseRequestHandler {
  /** One request in, one reply out (null: no reply, e.g. FORGET). */
  handle(req: Buffer): Promise<Buffer | null> | Buffer | null;
  /** A native fast path answering some requests exactly as handle() would, and when it may start
   * (fuse/protocol.ts). */
  nativeFastPath?(): { handle: FastPathHandle; ready(start: () => void): void } | undefined;
}

/** unmounted: the last reference to the mount went (ENODEV; or ECONNABORTED, which a read can
 * return instead when the kernel aborts the connection itself as the superblock goes — seen
 * intermittently after a lazy unmount). closed: close() was called. error: the device failed
 * otherwise (`detail` names the errno code). */
export type SessionEndReason = 'unmounted' | 'closed' | 'error';

export interface SessionEnd {
  reason: SessionEndReason;
  detail?: string;
}

export interface SessionWarning {
  code: 'handler-failed' | 'reply-failed';
  message: string;
  unique?: FuseUnique;
  cause?: unknown;
}

export interface FuseSessionOptions {
  /** Read buffer per request; the kernel wants at least max_write + 80 bytes. Default 1 MiB + 4 KiB. */
  bufferSize?: number;
  /** 'poll' (default): the JS thread reads the non-blocking device when libuv's epoll says it is
   * readable — no thread hand-over per request, which is what a latency-bound metadata walk pays
   * for (cold walk ~0.25 s -> ~0.15 s in bench-fs). 'thread': a native reader thread reads and
   * hands each request over. Neither ever occupies libuv's thread pool. */
  reader?: 'poll' | 'thread';
  /** Let the reader answer what the handler's native fast path can (fs/native-fast-path.ts).
   * Default: on, unless $STRATA_FUSE_FAST_PATH is 0 (the test suite runs both ways). */
  fastPath?: boolean;
}

/** The fast path's default: the switch that turns it off everywhere. */
export function fastPathDefault(): boolean {
  return process.env.STRATA_FUSE_FAST_PATH !== '0';
}

export const DEFAULT_BUFFER_SIZE = 1024 * 1024 + 4096;

/**
 * Events: 'end' (SessionEnd) exactly once, after the reader thread was joined and the device fd
 * closed; 'warn' (SessionWarning) for a handler that threw or a reply the kernel refused.
 */
export class FuseSession extends EventEmitter {
  readonly devFd: number;
  /** Resolves with the end once the session is over; never rejects. */
  readonly ended: Promise<SessionEnd>;
  private readonly handler: FuseRequestHandler;
  private readonly reader: number;
  private open = true;
  private closing = false;
  private resolveEnded!: (end: SessionEnd) => void;

  /** Takes ownership of devFd: the session closes it when it ends. */
  constructor(devFd: number, handler: FuseRequestHandler, options: FuseSessionOptions = {}) {
    super();
    this.devFd = devFd;
    this.handler = handler;
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
    const start = options.reader === 'thread' ? native.startReader : native.startPollReader;
    this.reader = start(devFd, options.bufferSize ?? DEFAULT_BUFFER_SIZE, (req, why) => {
      if (req) this.dispatch(req);
      else this.finish(why ?? 'EIO');
    });
    const fast = (options.fastPath ?? fastPathDefault()) ? handler.nativeFastPath?.() : undefined;
    this.fastPath = fast?.handle;
    fast?.ready(() => {
      if (this.open && !this.closing) native.setReaderFastPath(this.reader, fast.handle);
    });
  }

  /** The native fast path this session's reader uses once INIT is answered, if any. */
  readonly fastPath?: FastPathHandle;

  get isOpen(): boolean {
    return this.open;
  }

  /** Ends the session from our side: stops the reader and closes the device, which aborts the
   * connection (the mount, if still referenced, then answers ENOTCONN). */
  close(): Promise<SessionEnd> {
    if (this.open && !this.closing) {
      this.closing = true;
      native.stopReader(this.reader);
    }
    return this.ended;
  }

  /**
   * Asks the kernel to queue again every request a server of this connection read but never
   * answered (FUSE_NOTIFY_RESEND, kernel >= 6.9): after taking the device over from a daemon that
   * died, those requests would otherwise wait forever. Returns false when the kernel refused.
   */
  resend(): boolean {
    const note = Buffer.alloc(16);
    note.writeUInt32LE(16, 0);
    note.writeInt32LE(FUSE_NOTIFY_RESEND, 4);
    try {
      writeSync(this.devFd, note);
      return true;
    } catch {
      return false;
    }
  }

  private dispatch(req: Buffer): void {
    let reply: Promise<Buffer | null> | Buffer | null;
    try {
      reply = this.handler.handle(req);
    } catch (err) {
      this.failed(req, err);
      return;
    }
    if (reply instanceof Promise) {
      reply.then(
        (r) => this.write(r),
        (err: unknown) => this.failed(req, err),
      );
    } else {
      this.write(reply);
    }
  }

  /** A handler failure must not leave the caller in the kernel waiting forever: answer EIO. */
  private failed(req: Buffer, err: unknown): void {
    const unique = req.length >= FUSE_IN_HEADER_SIZE ? readUnique(req, 8) : undefined;
    this.emit('warn', {
      code: 'handler-failed',
      message: `FUSE handler failed: ${err instanceof Error ? err.message : String(err)}`,
      unique,
      cause: err,
    } satisfies SessionWarning);
    if (unique === undefined) return;
    const opcode = req.readUInt32LE(4);
    if (opcode === FUSE_FORGET || opcode === FUSE_BATCH_FORGET) return;
    this.write(encodeErrorReply(unique, EIO));
  }

  /**
   * Every reply is written here, synchronously. READ data (1 MiB) used to be written on libuv's
   * pool: the reply then waited there behind object-file reads while the next READs took fresh
   * buffers, and bench-fs without passthrough held 8 reply buffers at once. Written at once, a
   * buffer is back in the pool before the next read starts, so no more exist than reads in
   * flight (fs/read-slots.ts); sequential and read-every-file times did not change measurably.
   */
  private write(reply: Buffer | null): void {
    // A reply that arrives after the end has nowhere to go (and the fd number may be reused).
    if (reply === null) return;
    if (!this.open) {
      recycleReply(reply);
      return;
    }
    try {
      writeSync(this.devFd, reply);
    } catch (err) {
      this.writeFailed(reply, err);
    }
    recycleReply(reply);
  }

  private writeFailed(reply: Buffer, err: unknown): void {
    // ENOENT: the request was interrupted and is gone; ENODEV, ECONNABORTED: the mount is gone
    // and the reader will report it. Anything else is a malformed reply.
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENODEV') || isErrno(err, 'ECONNABORTED')) return;
    this.emit('warn', {
      code: 'reply-failed',
      message: `writing a FUSE reply failed: ${err instanceof Error ? err.message : String(err)}`,
      unique: peekUnique(reply),
      cause: err,
    } satisfies SessionWarning);
  }

  private finish(why: string): void {
    if (!this.open) return;
    this.open = false;
    const end: SessionEnd =
      why === 'ENODEV' || why === 'ECONNABORTED'
        ? { reason: 'unmounted' }
        : why === 'stopped'
          ? { reason: 'closed' }
          : { reason: 'error', detail: why };
    closeSync(this.devFd);
    this.resolveEnded(end);
    this.emit('end', end);
  }
}
