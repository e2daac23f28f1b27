// The only adapter between wire structs and nodes: implements RawFileSystem on top of a
// node-level Filesystem. It owns what the kernel protocol requires of every filesystem — lookup
// counts per node id (LOOKUP and READDIRPLUS add, FORGET subtracts), the open files by fh, cache
// timeouts and open flags, dirent packing, reply buffers — and the passthrough backing ids,
// shared per inode because the kernel refuses two different backing files for one inode.
//
// Restartable without state (docs/architecture.md#sessions-outlive-the-daemon): every file handle
// names its node. An inline file's or a passthrough open's handle is STATELESS_FH + the node id
// (nothing recorded; the native fast path hands out the same numbers); any other open file's
// handle is the node id itself, shared by every open of the node. So a READ whose fh this bridge
// never handed out — one opened under a server that has since died — is answered by opening the
// node again. Node ids are the tree index's inode numbers and FORGET frees nothing, so lookup
// counts are bookkeeping only. Backing ids are reported to `onBacking` as they are made (those the
// native fast path registers a moment later, through nativeBacking), and a new server takes them
// back with adoptBackings (they are kept for the session's life).
import * as C from '../fuse/constants.js';
import { FuseError } from '../fuse/errors.js';
import type { BackingCapability } from '../fuse/protocol.js';
import type { Awaitable, InitInfo, RawFileSystem, RequestContext } from '../fuse/raw.js';
import type { FuseAttr, FuseAttrOut, FuseEntryOut } from '../fuse/wire/attr.js';
import { direntSize, direntplusSize, writeDirent, writeDirentplus } from '../fuse/wire/dir.js';
import type { FuseLseekIn } from '../fuse/wire/lseek.js';
import type { FuseOpenIn, FuseOpenOut, FuseReadIn, FuseReleaseIn } from '../fuse/wire/open.js';
import type { FuseKstatfs } from '../fuse/wire/statfs.js';
import { allocReplyBody } from '../fuse/reply-pool.js';
import { S_IFDIR, S_IFMT } from '../../store/tree-index-format.js';
import type { Filesystem, IndexedNodes, NodeAttr, OpenedFile } from './api.js';
import { FileTable } from './file-table.js';
import { LookupCounts } from './lookup-counts.js';
import { createNativeFastPath } from './native-fast-path.js';
import { native, type FastPathHandle } from '../../native-addon.js';

export interface BridgeOptions {
  /** Seconds the kernel may cache names and attributes (default 86400: the image never changes). */
  entryTimeout?: number;
  attrTimeout?: number;
  backing?: BackingCapability;
  /** Told of every passthrough backing id made, e.g. to persist them for a server that adopts this
   * session later (ids are kept until the session ends, so none is ever closed before). */
  onBacking?: (ino: number, id: number, open: boolean) => void;
}

function fuseAttr(a: NodeAttr, into?: FuseAttr): FuseAttr {
  const f = into ?? ({} as FuseAttr);
  f.ino = a.ino;
  f.size = a.size;
  f.blocks = Math.ceil(a.size / 512);
  f.atime = f.mtime = f.ctime = a.mtimeSec;
  f.atimensec = f.mtimensec = f.ctimensec = a.mtimeNsec;
  f.mode = a.mode;
  f.nlink = a.nlink;
  f.uid = a.uid;
  f.gid = a.gid;
  f.rdev = a.rdev;
  f.blksize = 4096;
  f.flags = 0;
  return f;
}

const NO_ENTRY: FuseEntryOut = {
  nodeid: 0,
  generation: 0,
  entry_valid: 0,
  attr_valid: 0,
  entry_valid_nsec: 0,
  attr_valid_nsec: 0,
  attr: fuseAttr({ ino: 0, mode: 0, uid: 0, gid: 0, nlink: 0, size: 0, mtimeSec: 0, mtimeNsec: 0, rdev: 0 }),
};

function isDotOrDotDot(name: Buffer): boolean {
  return name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e));
}

/** The open files of one node that is neither inline nor passthrough (fh = node id): the
 * filesystem's handle and how many OPENs this bridge answered for it. */
interface OpenFile<H> {
  ino: number;
  handle: H;
  refs: number;
}

/**
 * File handles at and above this name a stateless open (OpenedFile.stateless): fh = STATELESS_FH +
 * the node id, nothing recorded, the handle rebuilt by reopen() on each READ. No table number
 * reaches it (they count up from 1 and are reused), node ids stay below 2^32, and the sum is
 * exact in a JavaScript number. The native fast path hands out the same numbers.
 */
export const STATELESS_FH = 2 ** 48;

export class FilesystemBridge<H extends object = object> implements RawFileSystem {
  private readonly fs: Filesystem<H>;
  private readonly entryTimeout: number;
  private readonly attrTimeout: number;
  private readonly backing?: BackingCapability;
  private passthrough = false;
  private readonly lookups = new LookupCounts();
  /** Open files by fh, and the passthrough backing id per inode with its open count. */
  private readonly files = new FileTable<OpenFile<H>>();
  private readonly backings = new Map<number, number>();
  /** The backing id per inode number as u32s (0: none), shared with the native fast path. */
  private backingTable?: Buffer;
  private readonly onBacking?: (ino: number, id: number, open: boolean) => void;

  constructor(fs: Filesystem<H>, options: BridgeOptions = {}) {
    this.fs = fs;
    this.entryTimeout = options.entryTimeout ?? 86400;
    this.attrTimeout = options.attrTimeout ?? 86400;
    this.backing = options.backing;
    this.onBacking = options.onBacking;
  }

  /**
   * Backing ids a previous server of this session registered (ino -> id). They are reused for
   * later OPENs of the same inode (the kernel refuses a second backing file for an inode that
   * still has one open), answered natively like our own, and closed when the session ends.
   */
  adoptBackings(entries: Iterable<[number, number]>): void {
    for (const [ino, id] of entries) this.rememberBacking(ino, id);
  }

  private rememberBacking(ino: number, id: number): void {
    this.backings.set(ino, id);
    // The native fast path reads the same ids (native-fast-path.ts).
    if (this.backingTable && (ino + 1) * 4 <= this.backingTable.length)
      this.backingTable.writeUInt32LE(id, ino * 4);
  }

  /** How many lookups the kernel holds on a node id (0 when forgotten or never seen). */
  lookupCount(nodeid: number): number {
    return this.lookups.get(nodeid);
  }

  get openFileCount(): number {
    return this.files.size;
  }

  get backingCount(): number {
    return this.backings.size;
  }

  /** The native fast path for the filesystem's indexed nodes (native-fast-path.ts), answering
   * exactly as this bridge does; undefined when the filesystem has no index. */
  nativeFastPath(): FastPathHandle | undefined {
    const nodes = this.fs.indexedNodes?.();
    if (!nodes) return undefined;
    this.backingTable ??= Buffer.alloc((nodes.index.inodeCount + 1) * 4);
    for (const [ino, id] of this.backings)
      if ((ino + 1) * 4 <= this.backingTable.length) this.backingTable.writeUInt32LE(id, ino * 4);
    const fast = createNativeFastPath(nodes, {
      entryTimeout: this.entryTimeout,
      attrTimeout: this.attrTimeout,
      backingIds: this.backingTable,
    });
    if (fast) {
      this.fastPaths.push(fast);
      if (nodes.objectsDir !== undefined) this.objectsDirs.set(fast, nodes.objectsDir);
      this.enableNativeBacking();
    }
    return fast;
  }

  /** What the native fast path answers from — the indexed nodes and this bridge's timeouts — for
   * a copy of it elsewhere (the VM agent's, src/vm/host.ts); undefined without an index. */
  fastPathSource(): { nodes: IndexedNodes; entryTimeout: number; attrTimeout: number } | undefined {
    const nodes = this.fs.indexedNodes?.();
    return nodes && { nodes, entryTimeout: this.entryTimeout, attrTimeout: this.attrTimeout };
  }

  /** Fast paths handed out, whose index fd destroy() closes (their sessions are over by then). */
  private readonly fastPaths: FastPathHandle[] = [];
  /** Fast paths that may register backing ids themselves, until they do (enableNativeBacking). */
  private readonly objectsDirs = new Map<FastPathHandle, string>();

  init(info: InitInfo): void {
    this.passthrough = info.passthrough && this.backing !== undefined;
    this.enableNativeBacking();
  }

  /** With passthrough, the fast paths also answer the first OPEN of an object file: they register
   * its backing id on the reader's device and tell nativeBacking. */
  private enableNativeBacking(): void {
    if (!this.passthrough) return;
    for (const [fast, dir] of this.objectsDirs) {
      this.objectsDirs.delete(fast);
      try {
        native.fastPathEnableBacking(fast, dir, this.nativeBacking);
      } catch {
        // e.g. no objects dir: TypeScript opens (and reports the error) as before
      }
    }
  }

  /** A backing id the native fast path registered (and published in the shared table) for an
   * inode: kept and closed like this bridge's own, and reported to onBacking. */
  private readonly nativeBacking = (ino: number, id: number): void => {
    if (this.backings.has(ino)) return;
    this.backings.set(ino, id);
    this.onBacking?.(ino, id, true);
  };

  destroy(): void {
    for (const [, { ino, handle }] of this.files.entries()) this.fs.release?.(ino, handle);
    for (const id of this.backings.values()) this.closeBacking(id);
    this.backingTable?.fill(0);
    this.files.clear();
    this.backings.clear();
    this.lookups.clear();
    for (const fast of this.fastPaths.splice(0)) native.fastPathClose(fast);
    this.objectsDirs.clear();
    this.fs.destroy?.();
  }

  /** The filesystem, once it is known to have method k (ENOSYS otherwise). Called as a method
   * rather than through a bound copy: binding made a function per request. */
  private cap<K extends keyof Filesystem<H>>(k: K): Filesystem<H> & Required<Pick<Filesystem<H>, K>> {
    if (!this.fs[k]) throw new FuseError(C.ENOSYS);
    return this.fs as Filesystem<H> & Required<Pick<Filesystem<H>, K>>;
  }

  /** `into`: a scratch record to fill in place (READDIRPLUS writes one per entry). */
  private entryOut(a: NodeAttr, into?: FuseEntryOut): FuseEntryOut {
    const e = into ?? ({} as FuseEntryOut);
    e.nodeid = a.ino;
    e.generation = 0;
    e.entry_valid = this.entryTimeout;
    e.attr_valid = this.attrTimeout;
    e.entry_valid_nsec = 0;
    e.attr_valid_nsec = 0;
    e.attr = fuseAttr(a, e.attr);
    return e;
  }

  private addLookup(ino: number): void {
    this.lookups.add(ino);
  }

  lookup(_ctx: RequestContext, parent: number, name: Buffer): FuseEntryOut {
    let attr: NodeAttr;
    try {
      attr = this.cap('lookup').lookup(parent, name);
    } catch (error) {
      // The tree never changes, so "no such name" is cached like any entry: node id 0 with an
      // entry timeout is the protocol's negative entry (the caller still sees ENOENT).
      if (error instanceof FuseError && error.errno === C.ENOENT)
        return { ...NO_ENTRY, entry_valid: this.entryTimeout };
      throw error;
    }
    this.addLookup(attr.ino);
    return this.entryOut(attr);
  }

  forget(nodeid: number, nlookup: number): void {
    // An unknown node is harmless: nothing to forget.
    if (this.lookups.forget(nodeid, nlookup)) this.fs.forget?.(nodeid);
  }

  getattr(_ctx: RequestContext, nodeid: number): FuseAttrOut {
    return {
      attr_valid: this.attrTimeout,
      attr_valid_nsec: 0,
      attr: fuseAttr(this.cap('getattr').getattr(nodeid)),
    };
  }

  readlink(_ctx: RequestContext, nodeid: number): Buffer {
    return this.cap('readlink').readlink(nodeid);
  }

  open(_ctx: RequestContext, nodeid: number, inp: FuseOpenIn): Awaitable<FuseOpenOut> {
    if ((inp.flags & C.O_ACCMODE) !== C.O_RDONLY || inp.flags & C.O_TRUNC) throw new FuseError(C.EROFS);
    // A file the kernel already has a backing file for needs nothing else (see opened()).
    const backed = this.backings.get(nodeid) ?? this.nativeTableId(nodeid);
    if (backed !== undefined) return this.backedOpen(nodeid, backed);
    if ((this.cap('getattr').getattr(nodeid).mode & S_IFMT) === S_IFDIR) throw new FuseError(C.EISDIR);
    const opened = this.cap('open').open(nodeid, inp.flags);
    return opened instanceof Promise
      ? opened.then((o) => this.opened(nodeid, o))
      : this.opened(nodeid, opened);
  }

  /**
   * With passthrough the kernel reads through the backing file, which holds its own reference to
   * the object: the open keeps nothing (a stateless handle; the filesystem's handle is released at
   * once) and the backing id stays registered for the inode until the session ends, so later opens
   * of the file cost no fd and no ioctl (and the native fast path answers them,
   * native-fast-path.ts). The kernel never sends READ for a passthrough open.
   */
  private opened(nodeid: number, opened: OpenedFile<H>): FuseOpenOut {
    const stateless = nodeid < 2 ** 32;
    if (opened.stateless && opened.fd === undefined && this.fs.reopen && stateless)
      return { fh: STATELESS_FH + nodeid, open_flags: C.FOPEN_KEEP_CACHE | C.FOPEN_NOFLUSH, backing_id: 0 };
    const backingId =
      opened.fd === undefined || !stateless ? undefined : this.acquireBacking(nodeid, opened.fd);
    if (backingId !== undefined) {
      this.fs.release?.(nodeid, opened.handle);
      return this.backedOpen(nodeid, backingId);
    }
    const fh = nodeid;
    const have = this.files.get(fh);
    if (have) {
      // One handle per node: the one already open serves this OPEN too.
      this.fs.release?.(nodeid, opened.handle);
      have.refs++;
    } else {
      this.files.set(fh, { ino: nodeid, handle: opened.handle, refs: 1 });
    }
    // NOFLUSH: close(2) needs no FLUSH round trip on a read-only file.
    return { fh, open_flags: C.FOPEN_KEEP_CACHE | C.FOPEN_NOFLUSH, backing_id: 0 };
  }

  private backedOpen(nodeid: number, backingId: number): FuseOpenOut {
    return {
      fh: STATELESS_FH + nodeid,
      open_flags: C.FOPEN_PASSTHROUGH | C.FOPEN_NOFLUSH,
      backing_id: backingId,
    };
  }

  private acquireBacking(ino: number, fd: number): number | undefined {
    if (!this.passthrough || !this.backing) return undefined;
    // Opens of one file that waited for its fd together: the first one registered it; or the
    // native fast path did, and its report is still on the way.
    const have = this.backings.get(ino) ?? this.nativeTableId(ino);
    if (have !== undefined) return have;
    let id: number;
    try {
      id = this.backing.open(fd);
    } catch {
      return undefined; // e.g. EPERM without CAP_SYS_ADMIN: serve reads ourselves
    }
    this.rememberBacking(ino, id);
    this.onBacking?.(ino, id, true);
    return id;
  }

  private nativeTableId(ino: number): number | undefined {
    if (!this.backingTable || (ino + 1) * 4 > this.backingTable.length) return undefined;
    const id = this.backingTable.readUInt32LE(ino * 4);
    if (id === 0) return undefined;
    this.nativeBacking(ino, id);
    return id;
  }

  private closeBacking(id: number): void {
    try {
      this.backing?.close(id);
    } catch {
      // the session is going away; the kernel drops its backing files with it
    }
  }

  /** Reads into reply bodies from the pool: the reply header is written in front of the data. */
  read(ctx: RequestContext, nodeid: number, inp: FuseReadIn): Awaitable<Buffer> {
    const fs = this.cap('read');
    if (inp.fh >= STATELESS_FH) {
      // An inline file is rebuilt from the index. A passthrough open has the same form, but the
      // kernel reads through its backing file and never sends READ for it (the native fast path
      // answers EBADF alike).
      const handle = inp.fh - STATELESS_FH === nodeid ? this.fs.reopen?.(nodeid) : undefined;
      if (handle === undefined) throw new FuseError(C.EBADF);
      return fs.read(nodeid, handle, inp.offset, inp.size, allocReplyBody, ctx);
    }
    // Otherwise the handle is the node id; anything else was never handed out by any server of
    // this session.
    if (inp.fh !== nodeid) throw new FuseError(C.EBADF);
    const file = this.files.get(inp.fh);
    if (file) return fs.read(nodeid, file.handle, inp.offset, inp.size, allocReplyBody, ctx);
    return this.readUnopened(nodeid, inp, ctx);
  }

  /**
   * A READ of a file this bridge has no open handle for: one opened under an earlier server of
   * this session (adoption), or already released. The node is opened for this read alone, so
   * nothing is kept that no RELEASE would ever free; the object fd stays in the shared cache.
   */
  private async readUnopened(nodeid: number, inp: FuseReadIn, ctx: RequestContext): Promise<Buffer> {
    const opened = await this.cap('open').open(nodeid, C.O_RDONLY);
    try {
      return await this.cap('read').read(nodeid, opened.handle, inp.offset, inp.size, allocReplyBody, ctx);
    } finally {
      this.fs.release?.(nodeid, opened.handle);
    }
  }

  release(_ctx: RequestContext, _nodeid: number, inp: FuseReleaseIn): void {
    // A stateless open (fh >= STATELESS_FH) left nothing to release. Unknown: opened under an
    // earlier server of this session, or never. Nothing to free.
    const file = inp.fh >= STATELESS_FH ? undefined : this.files.get(inp.fh);
    if (!file || --file.refs > 0) return;
    this.files.take(inp.fh);
    this.fs.release?.(file.ino, file.handle);
  }

  flush(): void {}

  opendir(_ctx: RequestContext, nodeid: number): FuseOpenOut {
    if ((this.cap('getattr').getattr(nodeid).mode & S_IFMT) !== S_IFDIR) throw new FuseError(C.ENOTDIR);
    return { fh: 0, open_flags: C.FOPEN_CACHE_DIR | C.FOPEN_KEEP_CACHE, backing_id: 0 };
  }

  releasedir(): void {}

  readdir(_ctx: RequestContext, nodeid: number, inp: FuseReadIn): Buffer {
    return this.fillDir(nodeid, inp, false);
  }

  readdirplus(_ctx: RequestContext, nodeid: number, inp: FuseReadIn): Buffer {
    return this.fillDir(nodeid, inp, true);
  }

  private fillDir(nodeid: number, inp: FuseReadIn, plus: boolean): Buffer {
    const entries = this.cap('readdir').readdir(nodeid, inp.offset);
    const attrs = plus ? this.cap('getattr') : undefined;
    const out = allocReplyBody(inp.size);
    const scratch = {} as FuseEntryOut;
    let at = 0;
    let pos = inp.offset;
    for (const e of entries) {
      const need = plus ? direntplusSize(e.name.length) : direntSize(e.name.length);
      if (at + need > out.length) break;
      pos++;
      const dirent = { ino: e.ino, off: pos, type: (e.mode & S_IFMT) >>> 12, name: e.name };
      if (!attrs) {
        at += writeDirent(out, at, dirent);
        continue;
      }
      // The kernel takes no reference for "." and ".." (fuse_direntplus_link skips them).
      if (isDotOrDotDot(e.name)) {
        at += writeDirentplus(out, at, { entry_out: NO_ENTRY, dirent });
        continue;
      }
      const entry = this.entryOut(attrs.getattr(e.ino), scratch);
      at += writeDirentplus(out, at, { entry_out: entry, dirent });
      this.addLookup(e.ino);
    }
    return out.subarray(0, at);
  }

  statfs(): FuseKstatfs {
    const s = this.cap('statfs').statfs();
    return {
      blocks: s.blocks,
      bfree: 0,
      bavail: 0,
      files: s.files,
      ffree: 0,
      bsize: s.bsize,
      namelen: s.namelen,
      frsize: s.bsize,
    };
  }

  getxattr(_ctx: RequestContext, nodeid: number, name: string): Buffer {
    const value = this.cap('getxattr').getxattr(nodeid, name);
    if (value === undefined) throw new FuseError(C.ENODATA);
    return value;
  }

  listxattr(_ctx: RequestContext, nodeid: number): string[] {
    return this.cap('listxattr').listxattr(nodeid);
  }

  access(_ctx: RequestContext, nodeid: number, mask: number): void {
    this.cap('getattr').getattr(nodeid); // ENOENT for a stale node
    if (mask & C.W_OK) throw new FuseError(C.EROFS);
  }

  lseek(_ctx: RequestContext, nodeid: number, inp: FuseLseekIn): number {
    const handle = inp.fh >= STATELESS_FH ? this.fs.reopen?.(nodeid) : this.files.get(inp.fh)?.handle;
    return this.cap('lseek').lseek(nodeid, handle, inp.offset, inp.whence);
  }
}
