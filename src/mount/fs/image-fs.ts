// ImageFilesystem: one stored image's tree index as a node-level Filesystem (api.ts). Node ids
// are the index's inode numbers (1 is the root, as FUSE_ROOT_ID), so they are stable for an
// image; placeholders are numbered above them. Regular file contents are the store's object
// files, opened through the shared fd cache; small files are inline in the index. Instances share
// nothing but that cache, so any number of images and mounts can be served at once.
import { read } from 'node:fs';
import { join } from 'node:path';
import * as C from '../fuse/constants.js';
import { FuseError } from '../fuse/errors.js';
import { objectPath } from '../../store/layout.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../../store/tree-index-format.js';
import type { TreeIndex } from '../../store/tree-index.js';
import type {
  DirEntryInfo,
  Filesystem,
  IndexedNodes,
  NodeAttr,
  OpenedFile,
  ReadBufferAlloc,
  StatfsInfo,
} from './api.js';
import { FdCache, sharedFdCache, type FdLease } from './fd-cache.js';
import { InlineReader } from './inline-reader.js';
import { buildPlaceholders, type PlaceholderSpec, type PlaceholderTree } from './placeholders.js';
import { sharedReadSlots } from './read-slots.js';

export interface ImageFilesystemOptions {
  index: TreeIndex;
  storeRoot: string;
  /** The file `index` was loaded from: inline contents are then read from it (inline-reader.ts)
   * instead of through the index's mapping. */
  indexPath?: string;
  placeholders?: PlaceholderSpec[];
  fdCache?: FdCache;
}

/** An open file: its contents in memory, or a lease on its object file's fd. */
export type ImageFile = { inline: Buffer } | { lease: FdLease; size: number };

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');
/** Every open placeholder file: it holds no state, so one object serves all. */
const EMPTY_FILE: ImageFile = { inline: Buffer.alloc(0) };

export class ImageFilesystem implements Filesystem<ImageFile> {
  readonly index: TreeIndex;
  readonly storeRoot: string;
  private readonly extra: PlaceholderTree;
  private readonly fdCache: FdCache;
  private readonly inline?: InlineReader;
  private totalBlocks?: number;

  constructor(options: ImageFilesystemOptions) {
    this.index = options.index;
    this.storeRoot = options.storeRoot;
    this.fdCache = options.fdCache ?? sharedFdCache;
    this.extra = buildPlaceholders(this.index, options.placeholders ?? []);
    this.inline = options.indexPath === undefined ? undefined : new InlineReader(options.indexPath);
  }

  private known(ino: number): boolean {
    return this.index.has(ino) || this.extra.nodes.has(ino);
  }

  private mode(ino: number): number {
    const p = this.extra.nodes.get(ino);
    if (p) return p.mode;
    if (!this.index.has(ino)) throw new FuseError(C.ENOENT, `no inode ${ino}`);
    return this.index.mode(ino);
  }

  getattr(ino: number): NodeAttr {
    const p = this.extra.nodes.get(ino);
    if (p) {
      const root = this.index.attr(this.index.rootIno);
      const isDir = (p.mode & S_IFMT) === S_IFDIR;
      const subdirs = [...(this.extra.children.get(ino)?.values() ?? [])].filter(
        (k) => (this.mode(k) & S_IFMT) === S_IFDIR,
      ).length;
      return {
        ino,
        mode: p.mode,
        uid: 0,
        gid: 0,
        nlink: isDir ? 2 + subdirs : 1,
        size: 0,
        mtimeSec: root.mtimeSec,
        mtimeNsec: root.mtimeNsec,
        rdev: 0,
      };
    }
    if (!this.index.has(ino)) throw new FuseError(C.ENOENT, `no inode ${ino}`);
    const attr = this.index.attr(ino);
    const added = this.extra.extra.get(ino);
    if (added) {
      const kids = this.extra.children.get(ino)!;
      attr.nlink += added.filter((n) => (this.mode(kids.get(n.toString())!) & S_IFMT) === S_IFDIR).length;
    }
    return attr;
  }

  lookup(parent: number, name: Buffer): NodeAttr {
    if ((this.mode(parent) & S_IFMT) !== S_IFDIR) throw new FuseError(C.ENOTDIR);
    let ino = this.extra.children.get(parent)?.get(name.toString()) ?? 0;
    if (ino === 0 && this.index.has(parent)) ino = this.index.lookup(parent, name);
    if (ino === 0) throw new FuseError(C.ENOENT);
    return this.getattr(ino);
  }

  readlink(ino: number): Buffer {
    if ((this.mode(ino) & S_IFMT) !== S_IFLNK) throw new FuseError(C.EINVAL);
    return this.index.readlink(ino);
  }

  private parentOf(dir: number): number {
    return this.extra.nodes.get(dir)?.parent ?? this.index.parent(dir);
  }

  *readdir(ino: number, offset: number): Iterable<DirEntryInfo> {
    if ((this.mode(ino) & S_IFMT) !== S_IFDIR) throw new FuseError(C.ENOTDIR);
    const inIndex = this.index.has(ino) ? this.index.entryCount(ino) : 0;
    const added = this.extra.extra.get(ino) ?? [];
    const placed = this.extra.children.get(ino);
    for (let pos = offset; pos < 2 + inIndex + added.length; pos++) {
      if (pos === 0) yield { name: DOT, ino, mode: S_IFDIR };
      else if (pos === 1) yield { name: DOTDOT, ino: this.parentOf(ino), mode: S_IFDIR };
      else if (pos < 2 + inIndex) {
        const e = this.index.entry(ino, pos - 2)!;
        const child = placed?.get(e.name.toString()) ?? e.ino;
        yield { name: e.name, ino: child, mode: this.mode(child) };
      } else {
        const name = added[pos - 2 - inIndex];
        const child = placed!.get(name.toString())!;
        yield { name, ino: child, mode: this.mode(child) };
      }
    }
  }

  open(ino: number): OpenedFile<ImageFile> | Promise<OpenedFile<ImageFile>> {
    const mode = this.mode(ino);
    if ((mode & S_IFMT) !== S_IFREG) throw new FuseError((mode & S_IFMT) === S_IFDIR ? C.EISDIR : C.EINVAL);
    if (this.extra.nodes.has(ino)) return { handle: EMPTY_FILE, stateless: true };
    const content = this.index.content(ino);
    if (content.kind === 'inline') return { handle: { inline: content.data }, stateless: true };
    const path = objectPath(this.storeRoot, content.digest);
    const cached = this.fdCache.tryAcquire(path);
    if (cached) return this.opened(ino, cached);
    return this.fdCache.acquire(path).then(
      (lease) => this.opened(ino, lease),
      (error: unknown) => {
        // A missing or unreadable object is store damage, not a property of the file.
        throw new FuseError(C.EIO, `cannot open object ${content.digest} for inode ${ino}: ${String(error)}`);
      },
    );
  }

  /** Files held in memory (inline contents, placeholders) need nothing but their node to read. */
  reopen(ino: number): ImageFile | undefined {
    const p = this.extra.nodes.get(ino);
    if (p) return (p.mode & S_IFMT) === S_IFREG ? EMPTY_FILE : undefined;
    if (!this.index.has(ino) || (this.index.mode(ino) & S_IFMT) !== S_IFREG) return undefined;
    const content = this.index.content(ino);
    return content.kind === 'inline' ? { inline: content.data } : undefined;
  }

  private opened(ino: number, lease: FdLease): OpenedFile<ImageFile> {
    return { handle: { lease, size: this.index.attr(ino).size }, fd: lease.fd };
  }

  read(
    _ino: number,
    file: ImageFile,
    offset: number,
    size: number,
    alloc: ReadBufferAlloc,
  ): Buffer | Promise<Buffer> {
    if ('inline' in file) {
      if (this.inline) return this.inline.read(file.inline, offset, size);
      return file.inline.subarray(Math.min(offset, file.inline.length), offset + size);
    }
    return this.readObject(file, offset, size, alloc);
  }

  /**
   * Reads straight into memory from `alloc` (the bridge's reply body: the reply header goes in
   * front of it without copying the data), with plain fs.read callbacks: an async function around
   * a promisified read made a promise, a closure and a result object per READ on top of what a
   * callback costs.
   */
  private readObject(
    h: { lease: FdLease; size: number },
    offset: number,
    size: number,
    alloc: ReadBufferAlloc,
  ): Promise<Buffer> {
    const want = Math.max(0, Math.min(size, h.size - offset));
    const fd = h.lease.fd;
    return new Promise((resolve, reject) => {
      const start = () => {
        const buf = alloc(want);
        let got = 0;
        const step = (error: NodeJS.ErrnoException | null, bytesRead: number) => {
          if (error) {
            sharedReadSlots.release();
            reject(error);
            return;
          }
          got += bytesRead;
          // bytesRead 0: the object is shorter than the index says; return what exists.
          if (bytesRead > 0 && got < want) {
            read(fd, buf, got, want - got, offset + got, step);
            return;
          }
          sharedReadSlots.release();
          resolve(got === want ? buf : buf.subarray(0, got));
        };
        try {
          if (want === 0) step(null, 0);
          else read(fd, buf, 0, want, offset, step);
        } catch (error) {
          // fs.read throws, rather than calling back, for arguments it rejects.
          step(error as NodeJS.ErrnoException, 0);
        }
      };
      const wait = sharedReadSlots.acquire();
      if (wait) void wait.then(start);
      else start();
    });
  }

  release(_ino: number, file: ImageFile): void {
    if ('lease' in file) file.lease.release();
  }

  /** Every node answers from the index except the directories placeholders add names to or
   * shadow names in (their entries and link counts differ); placeholders are above the index. */
  indexedNodes(): IndexedNodes {
    return {
      index: this.index,
      deferred: new Set([...this.extra.children.keys(), ...this.extra.extra.keys()]),
      indexFd: this.inline?.fd,
      objectsDir: join(this.storeRoot, 'objects'),
    };
  }

  /** An image without a single xattr answers GETXATTR ENOSYS: the kernel then stops asking for
   * good (getxattr(2) says EOPNOTSUPP), so neither each exec's security.capability nor an
   * overlay's trusted.overlay.* lookups on this lower layer reach the server. LISTXATTR still
   * answers an empty list: listing tools (rsync -X, cp -a, Python's os.listxattr) take
   * EOPNOTSUPP from listxattr(2) as an error, and an overlay above passes it on. */
  private noXattrs(): void {
    if (this.index.xattrTotal === 0) throw new FuseError(C.ENOSYS);
  }

  getxattr(ino: number, name: string): Buffer | undefined {
    this.noXattrs();
    if (!this.known(ino)) throw new FuseError(C.ENOENT);
    return this.index.has(ino) ? this.index.getxattr(ino, name) : undefined;
  }

  listxattr(ino: number): string[] {
    if (!this.known(ino)) throw new FuseError(C.ENOENT);
    return this.index.has(ino) ? this.index.xattrs(ino).map((x) => x.name) : [];
  }

  statfs(): StatfsInfo {
    if (this.totalBlocks === undefined) {
      let bytes = 0;
      for (let ino = 1; ino <= this.index.inodeCount; ino++)
        bytes += Math.ceil(this.index.attr(ino).size / 4096) * 4096;
      this.totalBlocks = bytes / 4096;
    }
    return {
      blocks: this.totalBlocks,
      files: this.index.inodeCount + this.extra.nodes.size,
      bsize: 4096,
      namelen: 255,
    };
  }

  /** Image files have no holes: data runs from 0 to the size. */
  lseek(ino: number, _file: ImageFile | undefined, offset: number, whence: number): number {
    const size = this.getattr(ino).size;
    if (offset >= size) throw new FuseError(C.ENXIO);
    if (whence === C.SEEK_DATA) return offset;
    if (whence === C.SEEK_HOLE) return size;
    throw new FuseError(C.EINVAL);
  }

  destroy(): void {
    this.inline?.close();
  }
}
