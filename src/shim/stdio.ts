// A task process's stdio as containerd describes it (pkg/process/io.go in containerd 1.6). The
// stdout URI decides how output goes, and stderr follows it:
//   - a path or fifo://path (the default: fifos the client made): each of stdin, stdout, stderr
//     that is set is a fifo (or, for output, an existing file, appended to);
//   - file:///path: stdout and stderr both appended to that file (created 0644, its directory
//     0755);
//   - binary:///path?k=v: a logging binary started with argv `path k v ...`, env CONTAINER_ID and
//     CONTAINER_NAMESPACE, the process's stdout on its fd 3, stderr on fd 4, and fd 5 to close
//     once it is ready; it gets SIGTERM when the process's IO closes (SIGKILL 12 s later). No stdin.
// The process gets real pipes (a socketpair cannot be reopened through /dev/stdout); the daemon
// copies between them and the destinations, so it knows when output is drained (an exit is
// reported only after that) and can close stdin (CloseIO). With a terminal, runc hands the pty
// master over a console socket and the copies run between it and the destinations instead.
//
// Nothing here opens a fifo with a blocking open(2): that would hold one of libuv's four threadpool
// threads until a writer comes, which may be never (the client gave up, or removed the fifo), and a
// daemon with four of them stuck stops serving files and cannot exit. The stdin fifo is opened
// O_RDONLY|O_NONBLOCK, once, before runc create: that open never waits, and the kernel reports no
// hang-up for it until a writer has come (fs/pipe.c, fifo_open), so its end of file is the client's
// writer closing. (Reopening it later, once the writer may have come and gone, loses that end.)
import { spawn, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants as fsc,
  createWriteStream,
  fstatSync,
  mkdirSync,
  openSync,
  readSync,
} from 'node:fs';
import { Socket } from 'node:net';
import { dirname, isAbsolute } from 'node:path';
import { ReadStream } from 'node:tty';
import type { Readable, Writable } from 'node:stream';

import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import { native } from '../native-addon.js';

export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** Who the process is, for a logging binary's environment (containerd: the exec id for an exec). */
export interface StdioOwner {
  id: string;
  namespace: string;
}

/** What the runtime process is spawned with: fds, or 'ignore'. */
export type ChildStdio = [number | 'ignore', number | 'ignore', number | 'ignore'];

/** How long an exit waits for its output to drain before being reported anyway. */
export const DRAIN_TIMEOUT_MS = 2000;
/** How long a logging binary may take to report ready (closing its fd 5). */
export const LOGGER_READY_TIMEOUT_MS = 10_000;
/** SIGTERM to a logging binary, then SIGKILL after this (containerd's binaryIOProcTermTimeout). */
export const LOGGER_TERM_TIMEOUT_MS = 12_000;

type OutputMode =
  { kind: 'fifo' } | { kind: 'file'; path: string } | { kind: 'binary'; path: string; args: string[] };

/** How output goes, from the stdout URI (containerd's createIO). */
export function outputMode(stdout: string): OutputMode {
  if (!stdout.includes('://')) {
    if (stdout && !isAbsolute(stdout))
      throw new InvalidArgumentError(`stdio ${stdout}: not an absolute path`);
    return { kind: 'fifo' };
  }
  let u: URL;
  try {
    u = new URL(stdout);
  } catch {
    throw new InvalidArgumentError(`stdio ${stdout}: not a valid URI`);
  }
  const path = decodeURIComponent(u.pathname);
  if (u.protocol === 'fifo:') return { kind: 'fifo' };
  if (u.host || !isAbsolute(path) || path.includes('\0'))
    throw new InvalidArgumentError(`stdio ${stdout}: needs an absolute path`);
  if (u.protocol === 'file:') return { kind: 'file', path };
  if (u.protocol === 'binary:') {
    const args: string[] = [];
    // Go's url.Values: keys sorted, the first value of each (NewBinaryCmd).
    const keys = [...new Set(u.searchParams.keys())].sort();
    for (const k of keys) args.push(k, u.searchParams.get(k) ?? '');
    return { kind: 'binary', path, args };
  }
  throw new InvalidArgumentError(`stdio ${stdout}: unsupported scheme ${u.protocol.replace(/:$/, '')}`);
}

/** A fifo's path from a stdin/stdout/stderr value in fifo mode ("" for none). */
function fifoPath(uri: string): string {
  if (!uri) return '';
  const path = uri.startsWith('fifo://') ? decodeURIComponent(new URL(uri).pathname) : uri;
  if (uri.includes('://') && !uri.startsWith('fifo://'))
    throw new InvalidArgumentError(`stdio ${uri}: unsupported scheme`);
  if (!isAbsolute(path)) throw new InvalidArgumentError(`stdio ${uri}: not an absolute path`);
  return path;
}

/** A writable stream to a fifo (through libuv's pipe handle: never a blocked thread) or a file. */
function openFifoWriter(path: string): Writable {
  // O_RDWR never blocks, and never fails for want of a reader; we never read it.
  const fd = openSync(path, fsc.O_RDWR | fsc.O_NONBLOCK);
  if (!fstatSync(fd).isFIFO()) {
    // Not a fifo: an existing file, appended to (containerd does the same).
    closeSync(fd);
    return createWriteStream(path, { fd: openSync(path, fsc.O_WRONLY | fsc.O_APPEND) });
  }
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

/** One destination written by several sources (file://: stdout and stderr); closed after the last. */
class SharedWriter {
  private users = 0;
  constructor(readonly w: Writable) {}
  add(src: Readable): void {
    this.users++;
    src.pipe(this.w, { end: false });
    let done = false;
    const release = (): void => {
      if (done) return;
      done = true;
      if (--this.users === 0) closeWhenFlushed(this.w);
    };
    src.once('end', release);
    src.once('close', release);
  }
}

/** A logging binary (binary://), as containerd's runc shim starts it. */
class Logger {
  /** The process's stdout and stderr: write ends of the logger's fd 3 and fd 4. */
  readonly out: number;
  readonly err: number;
  readonly ready: Promise<void>;
  private readonly child: ChildProcess;
  private killTimer?: NodeJS.Timeout;

  constructor(mode: { path: string; args: string[] }, owner: StdioOwner) {
    try {
      accessSync(mode.path, fsc.X_OK);
    } catch (err) {
      throw new FailedPreconditionError(
        `logging binary ${mode.path}: ${(err as NodeJS.ErrnoException).code ?? 'cannot run it'}`,
      );
    }
    const [outR, outW] = native.pipe();
    const [errR, errW] = native.pipe();
    const [readyR, readyW] = native.pipe();
    try {
      this.child = spawn(mode.path, mode.args, {
        stdio: ['ignore', 'ignore', 'ignore', outR, errR, readyW],
        env: { CONTAINER_ID: owner.id, CONTAINER_NAMESPACE: owner.namespace },
        detached: true, // its own process group: a terminal's signals are not its business
      });
    } catch (err) {
      for (const fd of [outW, errW, readyR]) closeSync(fd);
      throw err;
    } finally {
      closeSync(outR);
      closeSync(errR);
      closeSync(readyW);
    }
    this.child.unref(); // the daemon may stop while the task (and its logger) go on
    this.out = outW;
    this.err = errW;
    const readyPipe = pipeSocket(readyR, true);
    this.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        readyPipe.destroy();
        reject(
          new FailedPreconditionError(
            `logging binary ${mode.path} did not report ready (close its fd 5) within ${LOGGER_READY_TIMEOUT_MS / 1000} s`,
          ),
        );
      }, LOGGER_READY_TIMEOUT_MS);
      timer.unref();
      const done = (err?: Error): void => {
        clearTimeout(timer);
        readyPipe.destroy();
        if (err) reject(err);
        else resolve();
      };
      // A byte or the end of the pipe: ready (containerd reads one byte, EOF included).
      readyPipe.once('data', () => done());
      readyPipe.once('end', () => done());
      this.child.once('error', (e) =>
        done(new FailedPreconditionError(`starting logging binary ${mode.path}: ${e.message}`)),
      );
    });
    this.ready.catch(() => undefined);
  }

  /** SIGTERM (it flushes and leaves), SIGKILL if it is still there 12 s later. */
  stop(): void {
    const c = this.child;
    if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) return;
    c.kill('SIGTERM');
    this.killTimer = setTimeout(() => c.kill('SIGKILL'), LOGGER_TERM_TIMEOUT_MS);
    this.killTimer.unref();
    c.once('exit', () => clearTimeout(this.killTimer));
  }
}

export class ProcessIO {
  /** Handed to the runtime process; closeChildEnds() after it is spawned. */
  readonly child: ChildStdio = ['ignore', 'ignore', 'ignore'];
  /** Resolves when the destinations are ready (a logging binary said so). */
  readonly ready: Promise<void> = Promise.resolve();
  private childEnds: number[] = [];
  private stdinSink?: Writable;
  private stdinSource?: Socket;
  private stdinFd?: number;
  private writers: Writable[] = [];
  private drains: Promise<void>[] = [];
  private consoleFd?: number;
  private console?: ReadStream;
  private closed = false;
  private readonly mode: OutputMode;
  private logger?: Logger;
  private file?: SharedWriter;

  constructor(
    readonly paths: StdioPaths,
    owner: StdioOwner = { id: '', namespace: '' },
  ) {
    this.mode = outputMode(paths.stdout);
    const stdin = this.mode.kind === 'binary' ? '' : fifoPath(paths.stdin);
    try {
      if (this.mode.kind === 'binary') {
        this.logger = new Logger(this.mode, owner);
        this.ready = this.logger.ready;
        if (!paths.terminal) {
          this.child[1] = this.logger.out;
          this.child[2] = this.logger.err;
          this.childEnds.push(this.logger.out, this.logger.err);
        } else closeSync(this.logger.err); // a terminal has one output
      } else if (this.mode.kind === 'file') {
        mkdirSync(dirname(this.mode.path), { recursive: true, mode: 0o755 });
        const fd = openSync(this.mode.path, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT, 0o644);
        const w = createWriteStream(this.mode.path, { fd });
        w.on('error', () => undefined);
        this.writers.push(w);
        this.file = new SharedWriter(w);
      }
      if (paths.terminal) {
        if (this.mode.kind === 'fifo' && paths.stdout) fifoPath(paths.stdout);
        if (stdin) this.stdinFd = openSync(stdin, fsc.O_RDONLY | fsc.O_NONBLOCK);
        return;
      }
      if (stdin) {
        this.stdinFd = openSync(stdin, fsc.O_RDONLY | fsc.O_NONBLOCK);
        const [r, w] = native.pipe();
        this.child[0] = r;
        this.childEnds.push(r);
        this.stdinSink = pipeSocket(w, false);
        this.stdinSink.on('error', () => undefined); // EPIPE once the process is gone
        this.copyStdin(this.stdinSink);
      }
      if (this.mode.kind === 'binary') return;
      for (const [i, uri] of [
        [1, paths.stdout],
        [2, paths.stderr],
      ] as const) {
        if (!uri && this.mode.kind === 'fifo') continue;
        const [r, w] = native.pipe();
        this.child[i] = w;
        this.childEnds.push(w);
        const src = pipeSocket(r, true);
        src.on('error', () => undefined);
        this.output(src, uri);
        this.drains.push(ended(src));
      }
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** Copies `src` (a process's output) to its destination; the destination closes after it. */
  private output(src: Readable, fifoUri: string): void {
    if (this.file) {
      this.file.add(src);
      return;
    }
    if (this.logger) {
      const w = pipeSocket(this.logger.out, false);
      w.on('error', () => undefined);
      this.writers.push(w);
      src.pipe(w, { end: false });
      src.once('end', () => closeWhenFlushed(w));
      src.once('close', () => closeWhenFlushed(w));
      return;
    }
    const out = openFifoWriter(fifoPath(fifoUri));
    out.on('error', () => undefined); // the reader went away: output is dropped
    this.writers.push(out);
    src.pipe(out, { end: false });
    src.once('end', () => closeWhenFlushed(out));
    src.once('close', () => closeWhenFlushed(out));
  }

  /** The stdin fifo (opened in the constructor) copied to `sink`; its end is the end of stdin. */
  private copyStdin(sink: Writable): void {
    if (this.stdinFd === undefined) return;
    const src = new Socket({ fd: this.stdinFd, readable: true, writable: false });
    this.stdinSource = src;
    src.on('error', () => undefined);
    src.pipe(sink, { end: false });
    src.once('end', () => (sink === this.console ? undefined : closeWhenFlushed(sink)));
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
      this.output(tty, this.paths.stdout);
      this.drains.push(ended(tty));
    }
    tty.resume();
    if (this.stdinFd !== undefined) {
      this.stdinSink = tty;
      this.copyStdin(tty);
    }
  }

  resize(width: number, height: number): void {
    if (this.consoleFd === undefined)
      throw new InvalidArgumentError('this process has no terminal to resize');
    native.setWinsize(this.consoleFd, height, width);
  }

  /**
   * CloseIO: the process sees the end of its stdin, after everything the client wrote before it
   * (ctr writes its input, then asks CloseIO: the rest may still sit in the fifo). A terminal's
   * stdin stays open (as with containerd's shim: the end of a terminal is ^D, the client's to send).
   */
  closeStdin(): void {
    const src = this.stdinSource;
    const sink = this.stdinSink;
    if (src && sink && !src.destroyed) {
      src.unpipe(sink);
      let chunk: Buffer | null;
      while ((chunk = src.read() as Buffer | null) !== null) sink.write(chunk);
      const buf = Buffer.allocUnsafe(64 * 1024);
      for (;;) {
        let n: number;
        try {
          n = readSync(this.stdinFd!, buf);
        } catch {
          break; // EAGAIN: nothing more in the fifo
        }
        if (n === 0) break;
        sink.write(Buffer.from(buf.subarray(0, n)));
      }
      src.destroy();
    } else if (!src && this.stdinFd !== undefined) {
      closeSync(this.stdinFd);
    }
    this.stdinFd = undefined;
    if (sink && sink !== this.console) closeWhenFlushed(sink);
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

  /** Everything closed: pipes, fifos, the console; a logging binary is told to stop. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closeChildEnds();
    if (this.stdinSource) this.stdinSource.destroy();
    else if (this.stdinFd !== undefined) closeSync(this.stdinFd);
    this.stdinFd = undefined;
    if (this.stdinSink && this.stdinSink !== this.console) this.stdinSink.destroy();
    this.console?.destroy();
    for (const w of this.writers) closeWhenFlushed(w);
    this.logger?.stop();
  }
}
