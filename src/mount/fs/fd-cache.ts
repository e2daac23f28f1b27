// A bounded cache of read-only fds on object files, shared by every mount in the process: an
// image walk touches each object once, while a hot file is read many times. Entries in use (an
// open handle, a read in flight) are pinned; the least recently released unpinned ones are
// closed once the cache is over its bound. The bound is soft: pinned fds are never closed, so
// many simultaneously open files can exceed it until they are released.
// libuv opens every fd with O_CLOEXEC.
import { close, open, constants } from 'node:fs';
import { promisify } from 'node:util';

const openAsync = promisify(open);
const closeAsync = promisify(close);

export interface FdLease {
  readonly fd: number;
  release(): void;
}

interface Entry {
  opening: Promise<number>;
  fd: number;
  refs: number;
}

export class FdCache {
  readonly max: number;
  /** Insertion order is recency: a released entry is moved to the end. */
  private readonly entries = new Map<string, Entry>();

  constructor(max = 256) {
    this.max = max;
  }

  get size(): number {
    return this.entries.size;
  }

  /** A lease without waiting when the fd is already open (a hot file), else undefined. */
  tryAcquire(path: string): FdLease | undefined {
    const entry = this.entries.get(path);
    if (!entry || entry.fd < 0) return undefined;
    entry.refs++;
    return this.lease(path, entry);
  }

  async acquire(path: string): Promise<FdLease> {
    let entry = this.entries.get(path);
    if (!entry) {
      const created: Entry = { opening: openAsync(path, constants.O_RDONLY), fd: -1, refs: 0 };
      entry = created;
      this.entries.set(path, created);
      created.opening.then(
        (fd) => (created.fd = fd),
        () => {
          if (this.entries.get(path) === created) this.entries.delete(path);
        },
      );
    }
    entry.refs++;
    let fd: number;
    try {
      fd = await entry.opening;
    } catch (error) {
      entry.refs--;
      throw error;
    }
    entry.fd = fd;
    return this.lease(path, entry);
  }

  private lease(path: string, held: Entry): FdLease {
    let released = false;
    return {
      fd: held.fd,
      release: () => {
        if (released) return;
        released = true;
        held.refs--;
        if (held.refs === 0 && this.entries.get(path) === held) {
          this.entries.delete(path);
          this.entries.set(path, held);
        }
        this.evict();
      },
    };
  }

  private evict(): void {
    if (this.entries.size <= this.max) return;
    for (const [path, entry] of this.entries) {
      if (this.entries.size <= this.max) break;
      if (entry.refs > 0 || entry.fd < 0) continue;
      this.entries.delete(path);
      void closeAsync(entry.fd).catch(() => undefined);
    }
  }

  /** Close every unpinned fd (tests, shutdown). */
  async closeIdle(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [path, entry] of this.entries) {
      if (entry.refs > 0 || entry.fd < 0) continue;
      this.entries.delete(path);
      closing.push(closeAsync(entry.fd).catch(() => undefined));
    }
    await Promise.all(closing);
  }

  /** Entries currently pinned by a lease. */
  get pinned(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.refs > 0) n++;
    return n;
  }
}

/** The process-wide cache every ImageFilesystem uses unless given its own. */
export const sharedFdCache = new FdCache(256);
