// The one place that turns "store root + image ref" into something the kernel can talk to, for
// every reader of an image (the daemon's container roots, `strata mount`, a future shim): resolve
// the ref, take the reader's lease (image-lease.ts), load the image's tree index, build the FUSE
// handler (with passthrough backing ids when asked), and either hand back that handler for a
// device someone else opened (`prepareImage`, e.g. the fusermount3 path) or serve it from a fresh
// detached mount with the readahead window raised (`serveImage`), plus a writable overlay when
// asked. When the session ends the handler's open files and idle object fds are released, and
// then the lease.
import { closeSync } from 'node:fs';
import v8 from 'node:v8';
import { native } from '../native-addon.js';
import type { ImageRecord } from '../schema/generated/image-record.js';
import { loadTreeIndex, resolveImageRecord } from '../store/records.js';
import { treeIndexPath } from '../store/layout.js';
import type { TreeIndex } from '../store/tree-index.js';
import { createDetachedMount, type DetachedMount, type DetachedMountOptions } from './detached.js';
import { sharedFdCache, type FdCache } from './fs/fd-cache.js';
import { FilesystemBridge } from './fs/bridge.js';
import { createImageHandler } from './fs/image-handler.js';
import type { PlaceholderSpec } from './fs/placeholders.js';
import type { BackingCapability, FuseProtocol } from './fuse/protocol.js';
import { setReadahead } from './fuse/readahead.js';
import { releaseIdleReplyPool } from './fuse/reply-pool.js';
import { takeImageLease, type ImageLease, type ImageLeaseRequest } from './image-lease.js';
import type { OverlayOptions } from './overlay.js';
import { FuseSession, type FuseSessionOptions, type SessionEnd } from './session.js';

export interface ServeImageOptions {
  storeRoot: string;
  /** A name, name:tag, full or unique short manifest digest. */
  ref: string;
  /** `ref` already resolved (the daemon resolves it with messages of its own). */
  image?: ImageRecord;
  /** Where the tree index comes from. Default: mapped from the store for this image alone. */
  loadIndex?: (image: ImageRecord) => TreeIndex;
  /** Who reads, for the lease held while the session lasts. Default: a `mount` lease held by
   * this process. */
  lease?: ImageLeaseRequest;
  /** Offer FUSE passthrough (kernel >= 6.9, CAP_SYS_ADMIN); reads then bypass the server. Default true. */
  passthrough?: boolean;
  /** Mount points the image lacks (see fs/placeholders.ts). */
  placeholders?: PlaceholderSpec[];
  /** Default: the process-wide cache shared by every mount. */
  fdCache?: FdCache;
  /** Told of every passthrough backing id made and closed, for a server that adopts the session
   * later (adoptImage's `backings`). */
  onBacking?: (ino: number, id: number, open: boolean) => void;
}

export interface PreparedImage {
  image: ImageRecord;
  index: TreeIndex;
  /** The request handler for exactly one session. */
  handler: FuseProtocol;
  /** The reader's lease, held until release(). */
  lease: ImageLease;
  /** Tell the passthrough backing which /dev/fuse fd the session reads (before the first OPEN). */
  bindDevice(devFd: number): void;
  /** Release open handles and idle object fds once the session is over, then the lease;
   * idempotent. */
  release(): Promise<void>;
  /** The session goes on under another server (a daemon upgrade): release() leaves the lease,
   * which that server has taken over. */
  keepLease(): void;
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

/** A prepared image whose lease may still be being written (the lease is an fsync'd file; the
 * mount does not need it until it is handed out, so serveImage makes both at once). */
interface Preparing {
  prepared: Omit<PreparedImage, 'lease'>;
  lease: Promise<ImageLease>;
}

async function beginPrepare(opts: ServeImageOptions): Promise<Preparing> {
  const image = opts.image ?? (await resolveImageRecord(opts.storeRoot, opts.ref));
  const lease = takeImageLease(
    opts.storeRoot,
    image.manifestDigest,
    opts.lease ?? { kind: 'mount', reader: `pid ${process.pid}` },
  );
  lease.catch(() => undefined); // awaited by every path below
  const releaseLease = async () => (await lease.catch(() => undefined))?.release();
  const fdCache = opts.fdCache ?? sharedFdCache;
  let handler: FuseProtocol;
  let index: TreeIndex;
  const backing = opts.passthrough === false ? undefined : new DeviceBacking();
  try {
    index = (opts.loadIndex ?? ((i: ImageRecord) => loadTreeIndex(opts.storeRoot, i)))(image);
    handler = createImageHandler({
      index,
      storeRoot: opts.storeRoot,
      // Inline contents are read from the index file, not touched through its mapping.
      indexPath: treeIndexPath(opts.storeRoot, image.indexDigest),
      placeholders: opts.placeholders,
      backing,
      fdCache,
      onBacking: opts.onBacking,
    });
  } catch (err) {
    await releaseLease();
    throw err;
  }
  let released: Promise<void> | undefined;
  let keep = false;
  const prepared = {
    image,
    index,
    handler,
    bindDevice: (devFd: number) => {
      if (backing) backing.devFd = devFd;
    },
    keepLease: () => void (keep = true),
    release: () =>
      (released ??= (async () => {
        // Only after the session ended: its device fd is closed, and the number may already name
        // another session's device, whose backing ids a BACKING_CLOSE would take away. The kernel
        // drops a connection's backing files with it.
        if (backing) backing.devFd = -1;
        handler.fs.destroy?.();
        await fdCache.closeIdle();
        if (!keep) await releaseLease();
      })()),
  };
  return { prepared, lease };
}

/** Resolves the image, takes the reader's lease and builds the handler for a device the caller
 * opens. The caller runs the session and calls release() (releaseWhenEnded) when it ends. */
export async function prepareImage(opts: ServeImageOptions): Promise<PreparedImage> {
  const { prepared, lease } = await beginPrepare(opts);
  try {
    return { ...prepared, lease: await lease };
  } catch (err) {
    await prepared.release();
    throw err;
  }
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
 * (1 MiB measured ~25% slower, 128 KiB ~5x slower, both with 1 MiB READs: IMAGE_MAX_PAGES in
 * fs/image-handler.ts). 4 MiB was no faster in bench-fs without passthrough (cold seq read
 * ~0.3 s either way) and held more reply buffers at once. Every mount serveImage or attach.ts
 * makes gets it: container roots and `strata mount` alike. */
export const READAHEAD_KIB = 2048;

/** The mount's source in mountinfo: `strata:<12 hex of the manifest digest>`. */
export function mountSource(image: Pick<ImageRecord, 'manifestDigest'>): string {
  return `strata:${image.manifestDigest.replace(/^sha256:/, '').slice(0, 12)}`;
}

export interface ServedImage extends DetachedMount {
  image: ImageRecord;
  handler: FuseProtocol;
  lease: ImageLease;
  /** The session's end, once the image's resources and its lease were released too. Rejects
   * only when the lease could not be removed. */
  done: Promise<SessionEnd>;
  /** See PreparedImage.keepLease. */
  keepLease(): void;
}

export type ServeDetachedOptions = ServeImageOptions &
  Omit<DetachedMountOptions, 'handler' | 'fsname'> & {
    fsname?: string;
    /** Put a writable overlay over the image (true: upper layer on a fresh tmpfs); mountFd is
     * then the overlay's. */
    overlay?: boolean | OverlayOptions;
  };

/**
 * Resolves and serves an image from a new detached mount. The caller owns `mountFd`: attach it,
 * or hand it over and close it; the session ends (ENODEV) when the last reference goes, and the
 * image's resources and lease are released then. On failure nothing is left.
 */
export async function serveImage(opts: ServeDetachedOptions): Promise<ServedImage> {
  const { prepared, lease } = await beginPrepare(opts);
  let mount: DetachedMount;
  try {
    mount = await createDetachedMount({
      ...opts,
      handler: prepared.handler,
      fsname: opts.fsname ?? mountSource(prepared.image),
    });
  } catch (err) {
    await prepared.release();
    throw err;
  }
  prepared.bindDevice(mount.devFd); // before anyone can OPEN: the mount has not been handed out
  let mountFd = mount.mountFd;
  let overlayFd = -1;
  try {
    // The window belongs to the FUSE superblock's bdi: set on it, not on an overlay above it.
    // The overlay is async: making it looks up our own FUSE mount, which this thread serves.
    const overlayOpts = opts.overlay === true ? {} : opts.overlay || undefined;
    const [, taken, overlay] = await Promise.all([
      setReadahead(`/proc/self/fd/${mount.mountFd}`, READAHEAD_KIB),
      lease,
      overlayOpts
        ? // Loaded when first asked for: `strata mount` never is, and stays smaller.
          import('./overlay.js')
            .then((o) => o.createDetachedOverlay(mount.mountFd, overlayOpts))
            .then((fd) => (overlayFd = fd))
        : undefined,
    ]);
    if (overlay !== undefined) {
      closeSync(mount.mountFd);
      mountFd = overlay;
    }
    const done = releaseWhenEnded(mount.session, prepared);
    return {
      ...mount,
      mountFd,
      image: prepared.image,
      handler: prepared.handler,
      lease: taken,
      done,
      keepLease: prepared.keepLease,
    };
  } catch (err) {
    if (overlayFd >= 0) closeSync(overlayFd);
    closeSync(mount.mountFd);
    await mount.session.close();
    await prepared.release();
    throw err;
  }
}

export type AdoptImageOptions = ServeImageOptions &
  FuseSessionOptions & {
    /** The /dev/fuse fd of a session an earlier server made (and answered INIT on); the session
     * owns it from now on. */
    devFd: number;
    /** The backing ids that server left open, ino -> id (FilesystemBridge.adoptBackings). */
    backings?: Iterable<[number, number]>;
  };

/** A session taken over from an earlier server: no mount fd (the container holds the mount). */
export type AdoptedImage = Omit<ServedImage, 'mountFd'>;

/**
 * Serves an image on the device of a session an earlier server of the same image made: the same
 * handler serveImage builds (node ids are the index's inode numbers, handles are node ids, so it
 * answers the kernel exactly as the first server did), then every request the earlier server read
 * but never answered is queued again (FuseSession.resend). The placeholders must be the same as
 * the first server's (they are numbered in the order given). On failure the device is closed.
 */
export async function adoptImage(opts: AdoptImageOptions): Promise<AdoptedImage> {
  let prepared: PreparedImage;
  try {
    prepared = await prepareImage(opts);
  } catch (err) {
    closeSync(opts.devFd);
    throw err;
  }
  return serveAdopted(prepared, opts);
}

/**
 * The second half of adoptImage, for a caller that prepares first (lease, index) and starts
 * serving later (strata daemon --upgrade: the backing ids are read only once the earlier server
 * stopped making and closing them).
 */
export function serveAdopted(
  prepared: PreparedImage,
  opts: FuseSessionOptions & Pick<AdoptImageOptions, 'devFd' | 'backings'>,
): AdoptedImage {
  const bridge = prepared.handler.fs;
  if (opts.backings && bridge instanceof FilesystemBridge) bridge.adoptBackings(opts.backings);
  prepared.bindDevice(opts.devFd);
  prepared.handler.adopt();
  let session: FuseSession;
  try {
    session = new FuseSession(opts.devFd, prepared.handler, opts);
  } catch (err) {
    closeSync(opts.devFd);
    void prepared.release();
    throw err;
  }
  session.resend();
  const done = releaseWhenEnded(session, prepared);
  return {
    session,
    devFd: opts.devFd,
    image: prepared.image,
    handler: prepared.handler,
    lease: prepared.lease,
    done,
    keepLease: prepared.keepLease,
  };
}

/** Resolves with the session's end after the prepared image's resources (and lease) were
 * released. */
export async function releaseWhenEnded(
  session: FuseSession,
  prepared: Pick<PreparedImage, 'release'>,
): Promise<SessionEnd> {
  const end = await session.ended;
  await prepared.release();
  return end;
}
