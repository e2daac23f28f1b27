// The one place that turns "store root + image ref" into something the kernel can talk to:
// resolve the ref, load the image's tree index, build the FUSE handler (with passthrough backing
// ids when asked), and either hand back that handler for a device someone else opened
// (`prepareImage`, e.g. the fusermount3 path) or serve it from a fresh detached mount
// (`serveImage`, what the daemon and `strata mount` use). When the session ends the handler's
// open files and idle object fds are released.
import v8 from 'node:v8';
import { native } from '../native-addon.js';
import { resolveImage, loadTreeIndex, type ImageInfo } from '../store/records.js';
import { treeIndexPath } from '../store/layout.js';
import type { TreeIndex } from '../store/tree-index.js';
import { createDetachedMount, type DetachedMount, type DetachedMountOptions } from './detached.js';
import { sharedFdCache, type FdCache } from './fs/fd-cache.js';
import { createImageHandler } from './fs/image-handler.js';
import type { PlaceholderSpec } from './fs/placeholders.js';
import type { BackingCapability, FuseProtocol } from './fuse/protocol.js';
import { setReadahead } from './fuse/readahead.js';
import { releaseIdleReplyPool } from './fuse/reply-pool.js';
import type { FuseSession, SessionEnd } from './session.js';

export interface ServeImageOptions {
  storeRoot: string;
  /** A name, name:tag, full or unique short manifest digest. */
  ref: string;
  /** Offer FUSE passthrough (kernel >= 6.9, CAP_SYS_ADMIN); reads then bypass the server. Default true. */
  passthrough?: boolean;
  /** Mount points the image lacks (see fs/placeholders.ts). */
  placeholders?: PlaceholderSpec[];
  /** Default: the process-wide cache shared by every mount. */
  fdCache?: FdCache;
}

export interface PreparedImage {
  image: ImageInfo;
  index: TreeIndex;
  /** The request handler for exactly one session. */
  handler: FuseProtocol;
  /** Tell the passthrough backing which /dev/fuse fd the session reads (before the first OPEN). */
  bindDevice(devFd: number): void;
  /** Release open handles and idle object fds once the session is over; idempotent. */
  release(): Promise<void>;
}

/** FUSE_DEV_IOC_BACKING_OPEN/CLOSE on a /dev/fuse fd that is known only once it is opened. */
export class DeviceBacking implements BackingCapability {
  devFd = -1;
  open(fd: number): number {
    // The bridge treats a throw as "no passthrough for this file" and serves reads itself.
    if (this.devFd < 0) throw new Error('passthrough backing used before the device was bound');
    return native.fuseBackingOpen(this.devFd, fd);
  }
  close(id: number): void {
    if (this.devFd >= 0) native.fuseBackingClose(this.devFd, id);
  }
}

export async function prepareImage(opts: ServeImageOptions): Promise<PreparedImage> {
  const image = await resolveImage(opts.storeRoot, opts.ref);
  const index = loadTreeIndex(opts.storeRoot, image);
  const backing = opts.passthrough === false ? undefined : new DeviceBacking();
  const fdCache = opts.fdCache ?? sharedFdCache;
  const handler = createImageHandler({
    index,
    storeRoot: opts.storeRoot,
    indexPath: treeIndexPath(opts.storeRoot, image.indexDigest),
    placeholders: opts.placeholders,
    backing,
    fdCache,
  });
  return {
    image,
    index,
    handler,
    bindDevice: (devFd) => {
      if (backing) backing.devFd = devFd;
    },
    release: async () => {
      handler.fs.destroy?.();
      await fdCache.closeIdle();
    },
  };
}

/**
 * Call once, as early as possible, in a process that serves mounts (the daemon, `strata mount`).
 * V8's young generation grows to tens of MiB under the server's steady allocation of small
 * request objects. At run time V8 no longer honours --max-semi-space-size (the semi-space's
 * maximum is fixed when the heap is set up; it only works on the command line, as bench-fs
 * passes it), but it does read --semi-space-growth-factor on every growth: 1 keeps the young
 * generation at the size it has when this is called. Measured with `strata mount` of the Debian
 * image after a full walk and reading /usr/bin/*: the young generation stays at 4 MiB instead of
 * 8 and VmRSS drops by about 6 MiB, with no measurable change in walk time.
 * --optimize-for-size (also read at run time) lets the old generation grow by 2 MiB rather than
 * 8 between full collections: what a walk or a read of every file promotes and then drops was
 * otherwise held until the next one (bench-fs, after reading every file with passthrough: old
 * space 16 -> 10 MiB, RSS ~74 -> ~63 MiB; walk and read times unchanged within noise).
 * Not --no-opt: it saves ~4 MiB of the node binary's text (TurboFan never runs) but makes every
 * warm request about twice as slow (repeated cold walks 90-140 -> ~245 ms).
 */
export function limitServerHeap(): void {
  v8.setFlagsFromString('--max-semi-space-size=1');
  v8.setFlagsFromString('--semi-space-growth-factor=1');
  v8.setFlagsFromString('--optimize-for-size');
  tuneServerMalloc();
  // Unref'd: it never keeps the process alive, and costs nothing measurable every few seconds.
  setInterval(releaseServerMemory, MEMORY_RELEASE_MS).unref();
}

const MEMORY_RELEASE_MS = 5000;

/**
 * glibc malloc settings for a server whose fs calls run on libuv's pool threads. Each of those
 * threads otherwise gets its own arena, and after a large buffer is freed glibc raises its mmap
 * threshold, so later ones come from arenas where freed memory stays resident. Measured on the
 * bench (all workloads, no passthrough): RSS 81-83 -> 76 MiB.
 */
export function tuneServerMalloc(): void {
  native.mallopt(native.constants.M_ARENA_MAX, 2);
  native.mallopt(native.constants.M_MMAP_THRESHOLD, 128 * 1024);
}

/** Gives memory freed after a burst of requests back to the kernel: the READ reply pool once READs
 * stopped, and free malloc memory in every arena (measured ~8 MiB after the bench's workloads). */
export function releaseServerMemory(): void {
  releaseIdleReplyPool();
  native.mallocTrim();
}

/** A sequential read keeps several READs in flight, so the server's object-file reads overlap
 * (1 MiB measured ~25% slower, 128 KiB ~5x slower; measured with 1 MiB READs, the size
 * fs/image-handler.ts asks for). 4 MiB was no faster in bench-fs without passthrough (cold seq read
 * ~0.3 s either way) and held more reply buffers at once. */
export const READAHEAD_KIB = 2048;

/** The mount's source in mountinfo: `strata:<12 hex of the manifest digest>`. */
export function mountSource(image: Pick<ImageInfo, 'manifestDigest'>): string {
  return `strata:${image.manifestDigest.replace(/^sha256:/, '').slice(0, 12)}`;
}

export interface ServedImage extends DetachedMount {
  image: ImageInfo;
  handler: FuseProtocol;
  /** The session's end, once the image's resources were released too. */
  done: Promise<SessionEnd>;
}

export type ServeDetachedOptions = ServeImageOptions &
  Omit<DetachedMountOptions, 'handler' | 'fsname'> & { fsname?: string };

/**
 * Resolves and serves an image from a new detached mount. The caller owns `mountFd`: attach it,
 * or hand it over and close it; the session ends (ENODEV) when the last reference goes, and the
 * image's resources are released then.
 */
export async function serveImage(opts: ServeDetachedOptions): Promise<ServedImage> {
  const prepared = await prepareImage(opts);
  const mount = await createDetachedMount({
    ...opts,
    handler: prepared.handler,
    fsname: opts.fsname ?? mountSource(prepared.image),
  });
  prepared.bindDevice(mount.devFd);
  await setReadahead(`/proc/self/fd/${mount.mountFd}`, READAHEAD_KIB);
  const done = releaseWhenEnded(mount.session, prepared);
  return { ...mount, image: prepared.image, handler: prepared.handler, done };
}

/** Resolves with the session's end after the prepared image's resources were released. */
export async function releaseWhenEnded(session: FuseSession, prepared: PreparedImage): Promise<SessionEnd> {
  const end = await session.ended;
  await prepared.release();
  return end;
}
