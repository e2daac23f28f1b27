// A tiny FUSE responder for tests of the native and mount layers: a root directory with a few
// regular files, just enough of the protocol (INIT, LOOKUP, GETATTR, OPEN, READ, READDIR,
// RELEASE...) to open and read through a real mount. The real protocol lives in src/mount/fuse/.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

export interface MiniFile {
  ino: number;
  name: string;
  content: Buffer;
}

export interface MiniFuseOptions {
  /** Ask for FUSE_PASSTHROUGH in the INIT reply when the kernel offers it. */
  passthrough?: boolean;
  /** Backing id for OPEN of a given inode (FOPEN_PASSTHROUGH). */
  backingFor?: (ino: number) => number | undefined;
}

const OP = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  OPEN: 14,
  READ: 15,
  RELEASE: 18,
  FLUSH: 25,
  INIT: 26,
} as const;
const STATFS = 17;
const OPENDIR = 27;
const READDIR = 28;
const RELEASEDIR = 29;
const BATCH_FORGET = 42;
const FUSE_INIT_EXT = 1 << 30;
const FUSE_PASSTHROUGH_FLAGS2 = 1 << 5; // 1 << 37 in the 64-bit flags
const FOPEN_PASSTHROUGH = 1 << 7;

export class MiniFuse {
  readonly opcodes: number[] = [];
  readonly files: MiniFile[];
  kernelMinor = 0;
  passthroughGranted = false;
  private readonly opts: MiniFuseOptions;

  constructor(files: Record<string, string | Buffer>, opts: MiniFuseOptions = {}) {
    this.files = Object.entries(files).map(([name, c], i) => ({
      ino: i + 2,
      name,
      content: Buffer.isBuffer(c) ? c : Buffer.from(c),
    }));
    this.opts = opts;
  }

  /** Count of requests seen with this opcode. */
  seen(opcode: number): number {
    return this.opcodes.filter((o) => o === opcode).length;
  }

  handle(req: Buffer): Buffer | null {
    const opcode = req.readUInt32LE(4);
    const unique = req.readBigUInt64LE(8);
    const nodeid = Number(req.readBigUInt64LE(16));
    const body = req.subarray(40);
    this.opcodes.push(opcode);
    switch (opcode) {
      case OP.INIT:
        return reply(unique, 0, this.init(body));
      case OP.LOOKUP: {
        const name = body.subarray(0, body.indexOf(0)).toString();
        const f = nodeid === 1 ? this.files.find((x) => x.name === name) : undefined;
        if (!f) return reply(unique, -2);
        const out = Buffer.alloc(128);
        out.writeBigUInt64LE(BigInt(f.ino), 0);
        out.writeBigUInt64LE(60n, 16);
        out.writeBigUInt64LE(60n, 24);
        this.attr(f.ino).copy(out, 40);
        return reply(unique, 0, out);
      }
      case OP.GETATTR: {
        if (nodeid !== 1 && !this.file(nodeid)) return reply(unique, -2);
        const out = Buffer.alloc(104);
        out.writeBigUInt64LE(60n, 0);
        this.attr(nodeid).copy(out, 16);
        return reply(unique, 0, out);
      }
      case OP.OPEN: {
        const out = Buffer.alloc(16);
        const id = this.opts.backingFor?.(nodeid);
        if (id !== undefined) {
          out.writeUInt32LE(FOPEN_PASSTHROUGH, 8);
          out.writeInt32LE(id, 12);
        }
        return reply(unique, 0, out);
      }
      case OP.READ: {
        const f = this.file(nodeid);
        if (!f) return reply(unique, -5);
        const offset = Number(body.readBigUInt64LE(8));
        const size = body.readUInt32LE(16);
        return reply(unique, 0, f.content.subarray(offset, offset + size));
      }
      case STATFS: {
        // overlayfs statfs()es its lower layer when it is created
        const out = Buffer.alloc(80);
        out.writeUInt32LE(4096, 40); // bsize
        out.writeUInt32LE(255, 44); // namelen
        out.writeUInt32LE(4096, 48); // frsize
        return reply(unique, 0, out);
      }
      case OPENDIR:
        return reply(unique, 0, Buffer.alloc(16));
      case READDIR: {
        const offset = Number(body.readBigUInt64LE(8));
        const entries = this.files.slice(offset).map((f, i) => dirent(f.ino, offset + i + 1, f.name));
        return reply(unique, 0, Buffer.concat(entries));
      }
      case OP.RELEASE:
      case RELEASEDIR:
      case OP.FLUSH:
        return reply(unique, 0);
      case OP.FORGET:
      case BATCH_FORGET:
        return null;
      default:
        return reply(unique, -38); // ENOSYS
    }
  }

  private file(ino: number): MiniFile | undefined {
    return this.files.find((f) => f.ino === ino);
  }

  private init(body: Buffer): Buffer {
    const major = body.readUInt32LE(0);
    const minor = body.readUInt32LE(4);
    const flags = body.readUInt32LE(12);
    const flags2 = minor >= 36 && body.length >= 20 ? body.readUInt32LE(16) : 0;
    this.kernelMinor = minor;
    const out = Buffer.alloc(64);
    out.writeUInt32LE(major, 0);
    out.writeUInt32LE(Math.min(minor, 45), 4);
    out.writeUInt32LE(128 * 1024, 8); // max_readahead
    let outFlags2 = 0;
    if (this.opts.passthrough && flags2 & FUSE_PASSTHROUGH_FLAGS2 && flags & FUSE_INIT_EXT) {
      outFlags2 |= FUSE_PASSTHROUGH_FLAGS2;
      out.writeUInt32LE(1, 36); // max_stack_depth
      this.passthroughGranted = true;
    }
    out.writeUInt32LE(outFlags2 ? FUSE_INIT_EXT : 0, 12);
    out.writeUInt16LE(16, 16); // max_background
    out.writeUInt16LE(12, 18); // congestion_threshold
    out.writeUInt32LE(128 * 1024, 20); // max_write
    out.writeUInt32LE(1, 24); // time_gran
    out.writeUInt32LE(outFlags2, 32);
    return out;
  }

  private attr(ino: number): Buffer {
    const a = Buffer.alloc(88);
    const f = this.file(ino);
    a.writeBigUInt64LE(BigInt(ino), 0);
    a.writeBigUInt64LE(BigInt(f ? f.content.length : 0), 8);
    a.writeBigUInt64LE(BigInt(f ? Math.ceil(f.content.length / 512) : 0), 16);
    a.writeUInt32LE(f ? 0o100644 : 0o40755, 60);
    a.writeUInt32LE(f ? 1 : 2, 64);
    a.writeUInt32LE(4096, 80); // blksize
    return a;
  }
}

function reply(unique: bigint, error: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(16 + body.length);
  out.writeUInt32LE(out.length, 0);
  out.writeInt32LE(error, 4);
  out.writeBigUInt64LE(unique, 8);
  body.copy(out, 16);
  return out;
}

function dirent(ino: number, off: number, name: string): Buffer {
  const len = (24 + name.length + 7) & ~7;
  const d = Buffer.alloc(len);
  d.writeBigUInt64LE(BigInt(ino), 0);
  d.writeBigUInt64LE(BigInt(off), 8);
  d.writeUInt32LE(name.length, 16);
  d.writeUInt32LE(8, 20); // DT_REG
  d.write(name, 24);
  return d;
}

/** Counts used by teardown assertions. */
export function threadCount(): number {
  return readdirSync('/proc/self/task').length;
}
/** The open fds and what each points at. Compare with fdsLeftSince, not by count: Node and
 * libuv open and close fds of their own (workers, the inspector, lazily opened files) at times a
 * test does not control, and a count then mistakes one of theirs closing for one of ours. */
export type FdSnapshot = Map<number, string>;
export function fdSnapshot(): FdSnapshot {
  const fds: FdSnapshot = new Map();
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      fds.set(Number(name), readlinkSync(`/proc/self/fd/${name}`));
    } catch {
      // closed between the listing and the readlink (the listing's own directory fd among them)
    }
  }
  return fds;
}
/** "fd -> target" for every fd open now that was not open, to the same target, in `before`. */
export function fdsLeftSince(before: FdSnapshot): string[] {
  return [...fdSnapshot()]
    .filter(([fd, target]) => before.get(fd) !== target)
    .map(([fd, target]) => `${fd} -> ${target}`);
}
export function mountinfoMentions(text: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').includes(text);
}

/** Polls `cond` every 10 ms until it holds or `ms` pass. */
export async function waitFor(cond: () => boolean, ms = 1000): Promise<boolean> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

const addonPath = new URL('../../native/build/Release/strata.node', import.meta.url).pathname;

/**
 * Runs `body` (plain JS; sees `native`, `fs`, `c` = native.constants and `d` = data) on a worker
 * thread and resolves with its return value. Synchronous calls into our own FUSE mount must not
 * run on the main thread: it is the thread that answers them, so it would deadlock.
 */
export function offThread<T>(body: string, data: unknown = {}): Promise<T> {
  const src = `
    const { workerData, parentPort } = require('node:worker_threads');
    const native = require(${JSON.stringify(addonPath)});
    const fs = require('node:fs');
    const c = native.constants;
    process.removeAllListeners('warning'); // closing an fd the worker's fs did not open warns
    try {
      const value = (function (d) { ${body} })(workerData);
      parentPort.postMessage({ value });
    } catch (e) {
      parentPort.postMessage({ error: { message: e.message, code: e.code } });
    }`;
  // Settles only once the worker has exited, so fd and thread counts taken afterwards are exact.
  return new Promise((resolve, reject) => {
    const w = new Worker(src, { eval: true, workerData: data });
    let outcome: { value?: T; error?: { message: string; code?: string } } | undefined;
    let failure: unknown;
    w.once('message', (m: typeof outcome) => (outcome = m));
    w.once('error', (err) => (failure = err));
    w.once('exit', () => {
      if (outcome?.error)
        reject(Object.assign(new Error(outcome.error.message), { code: outcome.error.code }));
      else if (outcome) resolve(outcome.value as T);
      else reject(failure ?? new Error('worker exited without an answer'));
    });
  });
}
