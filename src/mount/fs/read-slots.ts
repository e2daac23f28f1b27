// A process-wide bound on object-file reads in flight. Each read holds a reply buffer of up to
// 1 MiB (fuse/reply-pool.ts) from the moment it starts, but libuv's pool runs only
// UV_THREADPOOL_SIZE (default 4) of them at once: the kernel's further READs (up to its
// max_background of 12) would wait in libuv's queue, each holding a buffer. Bounded here, they
// wait before taking one, and the pool holds no more buffers than reads that can really run.

export class ReadSlots {
  readonly size: number;
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(size: number) {
    this.size = size;
    this.free = size;
  }

  /** undefined when a read may start now, else a promise of the moment it may; either way the
   * caller calls release() once its read is done. */
  acquire(): Promise<void> | undefined {
    if (this.free > 0) {
      this.free--;
      return undefined;
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (!next) {
      this.free++;
      return;
    }
    // Handed over on the next turn of the event loop: by then the read that just finished has
    // had its reply written and its buffer returned to the pool, and the next read reuses it.
    setImmediate(next);
  }

  /** Reads waiting for a slot (tests). */
  get queued(): number {
    return this.waiting.length;
  }
}

export const sharedReadSlots = new ReadSlots(Number(process.env.UV_THREADPOOL_SIZE) || 4);
