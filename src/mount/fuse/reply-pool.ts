// The process-wide pool of reply bodies, shared by every mount the process serves. Each body has
// room for the out header in front of it (wire/header.ts allocWithHeadroom), so a READ's data is
// read straight into the memory that is written to /dev/fuse. fs/bridge.ts hands bodies out to
// the filesystem; session.ts and inflight.ts give them back once a reply was written or dropped.
import { allocWithHeadroom, FUSE_OUT_HEADER_SIZE } from './wire/header.js';

/** Reply buffers for READ data are reused once written: allocating 1 MiB per READ keeps the
 * garbage collector busy and the RSS high. A few suffice: replies are written as they finish. */
export const POOLED_BODY_SIZE = 1 << 20;
/** Bodies of every size are pooled: allocated one by one, small ones (READDIR, the tail of an
 * object file, random 4 KiB reads) each made an ArrayBuffer that piled up in malloc's heap until
 * the garbage collector freed it (bench-fs without passthrough, after reading every file: ~6 MiB
 * with 4 KiB ones allocated; after 20k random 4 KiB reads, [heap] 4 MiB against 2.8). Only the
 * pages a reply touches become resident, so a small READ in a 1 MiB buffer costs what it uses. */
/** 4 measured worse: more READs are in flight than readahead suggests, and the misses allocated
 * 1 MiB each (bench peak RSS 139 MiB, seq read 1.7x slower). The pool is dropped when idle. */
const POOL_MAX = 8;
const pool: ArrayBufferLike[] = [];
const pooled = new WeakSet<ArrayBufferLike>();
/** Whether a body was taken from the pool since releaseIdleReplyPool last looked. */
let poolUsed = false;

/**
 * A body buffer with room for the out header in front of it: encodeReply then writes the header
 * in place and sends the same memory, instead of copying the body. Any subarray that still starts
 * at the body's first byte keeps that property. Bodies up to 1 MiB come from the pool;
 * recycleReply gives them back once the reply was written.
 */
export function allocReplyBody(size: number): Buffer {
  if (size <= POOLED_BODY_SIZE) {
    poolUsed = true;
    let ab = pool.pop();
    if (!ab) {
      ab = allocWithHeadroom(POOLED_BODY_SIZE);
      pooled.add(ab);
    }
    return Buffer.from(ab, FUSE_OUT_HEADER_SIZE, size);
  }
  return Buffer.from(allocWithHeadroom(size), FUSE_OUT_HEADER_SIZE, size);
}

/** Returns a written reply's memory to the pool when it came from there; the caller must not
 * touch `reply` afterwards. Other buffers are left to the garbage collector. */
export function recycleReply(reply: Buffer): void {
  if (pooled.has(reply.buffer) && pool.length < POOL_MAX && !pool.includes(reply.buffer))
    pool.push(reply.buffer);
}

/** Drops the pooled buffers (an idle server gives their memory back); READs refill the pool. */
export function releaseReplyPool(): void {
  pool.length = 0;
}

/**
 * releaseReplyPool, but only when no body was taken from the pool since the previous call (the
 * server's periodic memory release calls this). Dropped during a burst of READs, the buffers
 * stayed resident until the next full garbage collection while the READs that followed
 * allocated new ones: bench-fs without passthrough held 8 MiB of them where 4 were in use.
 */
export function releaseIdleReplyPool(): boolean {
  const idle = !poolUsed;
  poolUsed = false;
  if (idle) pool.length = 0;
  return idle;
}

/** Buffers currently pooled (tests). */
export function replyPoolSize(): number {
  return pool.length;
}
