// A task process's stdio as containerd describes it: fifo paths the client already opened (the
// default), file:///path (appended to), or nothing (""). The process gets real pipes (a socketpair
// cannot be reopened through /dev/stdout); the daemon copies between them and the destinations, so
// it knows when output is drained (an exit is reported only after that) and can close stdin
// (CloseIO). With a terminal, runc hands the pty master over a console socket and the copies
// run between it and the fifos instead.
import { closeSync, constants as fsc, createWriteStream, openSync, promises as fsp } from 'node:fs';
import { Socket } from 'node:net';
import { ReadStream } from 'node:tty';
import type { Readable, Writable } from 'node:stream';

import { InvalidArgumentError } from '../errors.js';
import { native } from '../native-addon.js';

export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** What the runtime process is spawned with: fds, or 'ignore'. */
export type ChildStdio = [number | 'ignore', number | 'ignore', number | 'ignore'];

/** How long an exit waits for its output to drain before being reported anyway. */
export const DRAIN_TIMEOUT_MS = 2000;

function destination(uri: string): { kind: 'fifo' | 'file'; path: string } {
  if (uri.startsWith('file://')) return { kind: 'file', path: decodeURIComponent(new URL(uri).pathname) };
  if (uri.startsWith('binary://')) {
    throw new InvalidArgumentError(`stdio ${uri}: binary:// loggers are not supported by strata yet`);
  }
  if (uri.includes('://')) throw new InvalidArgumentError(`stdio ${uri}: unsupported scheme`);
  if (!uri.startsWith('/')) throw new InvalidArgumentError(`stdio ${uri}: not an absolute path`);
  return { kind: 'fifo', path: uri };
}

/** A writable stream to a destination: fifos through libuv's pipe handle (never a blocked thread). */
function openWriter(uri: string): Writable {
  const d = destination(uri);
  if (d.kind === 'file') return createWriteStream(d.path, { flags: 'a' });
  // O_RDWR never blocks, and never fails for want of a reader; we never read it.
  const fd = openSync(d.path, fsc.O_RDWR | fsc.O_NONBLOCK);
  return new Socket({ fd, readable: false, writable: true });
}

function pipeSocket(fd: number, readable: boolean): Socket {
  return new Socket({ fd, readable, writable: !readable });
}

/**
 * Closes the write end of a pipe once what was written has gone out. Not end(): libuv ends a pipe
 * with shutdown(2), which a pipe refuses (ENOTSOCK), and the reader would never see end of file.
 */
function closeWhenFlushed(w: Writable): void {
  if (w.destroyed) return;
  if (w.writableLength === 0) w.destroy();
  else {
    w.once('drain', () => w.destroy());
    w.once('error', () => w.destroy());
  }
}

function ended(s: Readable): Promise<void> {
  return new Promise((resolve) => {
    if (s.readableEnded || s.destroyed) return resolve();
    s.once('end', resolve);
    s.once('close', resolve);
    s.once('error', () => resolve());
  });
}

export class ProcessIO {
  /** Handed to the runtime process; closeChildEnds() after it is spawned. */
  readonly child: ChildStdio = ['ignore', 'ignore', 'ignore'];
  private childEnds: number[] = [];
  private stdinSink?: Writable;
  private stdinSource?: Socket;
  private writers: Writable[] = [];
  private drains: Promise<void>[] = [];
  private consoleFd?: number;
  private console?: ReadStream;
  private closed = false;
  private stdinOpening?: { path: string; done: Promise<void> };

  constructor(readonly paths: StdioPaths) {
    if (paths.terminal) {
      if (paths.stdin) destination(paths.stdin);
      if (paths.stdout) destination(paths.stdout);
      return;
    }
    try {
      if (paths.stdin) {
        destination(paths.stdin);
        const [r, w] = native.pipe();
        this.child[0] = r;
        this.childEnds.push(r);
        this.stdinSink = pipeSocket(w, false);
        this.stdinSink.on('error', () => undefined); // EPIPE once the process is gone
        this.openStdin(paths.stdin, this.stdinSink);
      }
      for (const [i, uri] of [
        [1, paths.stdout],
        [2, paths.stderr],
      ] as const) {
        if (!uri) continue;
        const out = openWriter(uri);
        out.on('error', () => undefined); // the reader went away: output is dropped
        this.writers.push(out);
        const [r, w] = native.pipe();
        this.child[i] = w;
        this.childEnds.push(w);
        const src = pipeSocket(r, true);
        src.on('error', () => undefined);
        src.pipe(out, { end: false });
        src.once('end', () => closeWhenFlushed(out));
        this.drains.push(ended(src));
      }
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** The stdin fifo is opened for reading in the background: open(2) waits for its writer. Then
   * it is reopened non-blocking for libuv (a writer exists now, so no early end of file). */
  private openStdin(path: string, sink: Writable): void {
    const done = (async () => {
      const fh = await fsp.open(path, fsc.O_RDONLY);
      try {
        if (this.closed) return;
        const fd = openSync(`/proc/self/fd/${fh.fd}`, fsc.O_RDONLY | fsc.O_NONBLOCK);
        const src = new Socket({ fd, readable: true, writable: false });
        this.stdinSource = src;
        src.on('error', () => undefined);
        src.pipe(sink, { end: false });
        // The end of the fifo (its writer closed) is the end of the process's stdin.
        src.once('end', () => (sink === this.console ? undefined : closeWhenFlushed(sink)));
      } finally {
        await fh.close();
      }
    })().catch(() => undefined);
    this.stdinOpening = { path, done };
  }

  /** After the runtime process was spawned: our copies of the child's ends go. */
  closeChildEnds(): void {
    for (const fd of this.childEnds) closeSync(fd);
    this.childEnds = [];
  }

  /** A terminal's master, as runc sent it over the console socket. */
  attachConsole(masterFd: number): void {
    this.consoleFd = masterFd;
    const tty = new ReadStream(masterFd);
    this.console = tty;
    tty.on('error', () => undefined); // EIO once the slave side is gone
    if (this.paths.stdout) {
      const out = openWriter(this.paths.stdout);
      out.on('error', () => undefined);
      this.writers.push(out);
      tty.pipe(out, { end: false });
      tty.once('end', () => closeWhenFlushed(out));
      tty.once('close', () => closeWhenFlushed(out));
      this.drains.push(ended(tty));
    }
    tty.resume();
    if (this.paths.stdin) {
      this.stdinSink = tty;
      this.openStdin(this.paths.stdin, tty);
    }
  }

  resize(width: number, height: number): void {
    if (this.consoleFd === undefined)
      throw new InvalidArgumentError('this process has no terminal to resize');
    native.setWinsize(this.consoleFd, height, width);
  }

  /** CloseIO: the process sees the end of its stdin. */
  closeStdin(): void {
    this.stdinSource?.unpipe();
    this.stdinSource?.destroy();
    if (this.stdinSink && this.stdinSink !== this.console) closeWhenFlushed(this.stdinSink);
    this.abortStdinOpen();
  }

  /** Resolves when the output copies are done (the process and every holder of its pipes closed
   * them), or after timeoutMs. */
  async drained(timeoutMs = DRAIN_TIMEOUT_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.drains),
      new Promise<void>((r) => {
        timer = setTimeout(r, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  /** Everything closed: pipes, fifos, the console. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closeChildEnds();
    this.abortStdinOpen();
    this.stdinSource?.destroy();
    if (this.stdinSink && this.stdinSink !== this.console) this.stdinSink.destroy();
    this.console?.destroy();
    for (const w of this.writers) closeWhenFlushed(w);
  }

  /** A reader still waiting in open(2) for the stdin fifo's writer: give it one, so it returns. */
  private abortStdinOpen(): void {
    const o = this.stdinOpening;
    if (!o) return;
    this.stdinOpening = undefined;
    if (this.stdinSource) return;
    try {
      closeSync(openSync(o.path, fsc.O_WRONLY | fsc.O_NONBLOCK));
    } catch {
      // no reader waiting (ENXIO), or the fifo is gone
    }
  }
}
