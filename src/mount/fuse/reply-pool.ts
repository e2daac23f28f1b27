// The process-wide pool of reply bodies, shared by every mount the process serves. Each body has
// room for the out header in front of it (wire/header.ts allocWithHeadroom), so a READ's data is
// read straight into the memory that is written to /dev/fuse. fs/bridge.ts hands bodies out to
// the filesystem; session.ts and inflight.ts give them back once a reply was written or dropped.
import { native } from '../../native-addon.js';
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
/** Pooled bodies beyond this many give their pages back when they return (discardPages). A
 * sequential read without passthrough keeps ~4 READs in flight at its peak, and each of their
 * bodies stayed resident in the pool afterwards: bench-fs's worst RSS sample, after the seq read,
 * held 4-5 MiB of idle bodies. While READs keep coming a returned body is taken again at once,
 * so at most this many wait in the pool and none is discarded; the surplus only forms when a
 * burst ends, which is when its memory should go. */
const RESIDENT_MAX = 2;
/** Idle bodies, resident ones last (taken first: they need no page faults). */
const pool: ArrayBufferLike[] = [];
const pooled = new WeakSet<ArrayBufferLike>();
/** Pooled bodies whose pages were discarded. */
const discarded = new WeakSet<ArrayBufferLike>();
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
    discarded.delete(ab);
    return Buffer.from(ab, FUSE_OUT_HEADER_SIZE, size);
  }
  return Buffer.from(allocWithHeadroom(size), FUSE_OUT_HEADER_SIZE, size);
}

/** Returns a written reply's memory to the pool when it came from there; the caller must not
 * touch `reply` afterwards. Other buffers are left to the garbage collector. */
export function recycleReply(reply: Buffer): void {
  const ab = reply.buffer;
  if (!pooled.has(ab) || pool.length >= POOL_MAX || pool.includes(ab)) return;
  const resident = pool.reduce((n, b) => (discarded.has(b) ? n : n + 1), 0);
  if (resident >= RESIDENT_MAX) {
    discard(ab);
    pool.unshift(ab);
  } else {
    pool.push(ab);
  }
}

function discard(ab: ArrayBufferLike): void {
  if (discarded.has(ab)) return;
  native.discardPages(ab);
  discarded.add(ab);
}

/** Drops the pooled buffers, their pages at once (an idle server gives their memory back, where
 * dropping the references alone waited for a full garbage collection); READs refill the pool. */
export function releaseReplyPool(): void {
  for (const ab of pool) discard(ab);
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
  if (idle) releaseReplyPool();
  return idle;
}

/** Buffers currently pooled (tests). */
export function replyPoolSize(): number {
  return pool.length;
}

/** Pooled buffers whose pages are still resident (tests). */
export function residentReplyPoolSize(): number {
  return pool.reduce((n, b) => (discarded.has(b) ? n : n + 1), 0);
}
