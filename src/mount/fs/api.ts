// The filesystem side of the FUSE server, in nodes rather than wire structs: small capability
// interfaces, each optional. bridge.ts adapts whatever subset a filesystem implements to the
// protocol; a missing capability answers ENOSYS. Methods signal errnos by throwing FuseError.
// `H` is the filesystem's own open-file handle: the bridge numbers open files for the kernel and
// hands the handle back on read, lseek and release, so the filesystem keeps no handle table.
import type { InodeAttr, TreeIndex } from '../../store/tree-index.js';

/** A node's attributes are the tree index's inode attributes (placeholders use the same shape). */
export type NodeAttr = InodeAttr;

export interface DirEntryInfo {
  name: Buffer;
  ino: number;
  /** S_IFMT bits are enough (for the dirent type). */
  mode: number;
}

export interface OpenedFile<H> {
  handle: H;
  /** An fd on the file's content, for a passthrough backing id; absent for content held in memory. */
  fd?: number;
  /** The handle holds nothing that reopen(ino) cannot rebuild: the bridge keeps no record of the
   * open file (its fh names the node, bridge.ts STATELESS_FH) and RELEASE has nothing to undo. */
  stateless?: boolean;
}

export interface StatfsInfo {
  blocks: number;
  files: number;
  bsize: number;
  namelen: number;
}

export interface NodeLookuper {
  /** The child's attributes; ENOENT when absent. */
  lookup(parent: number, name: Buffer): NodeAttr;
}
export interface NodeGetattrer {
  getattr(ino: number): NodeAttr;
}
export interface NodeForgetter {
  /** The kernel dropped its last reference to ino. */
  forget(ino: number): void;
}
export interface NodeReadlinker {
  readlink(ino: number): Buffer;
}
/**
 * Memory for the bytes a read returns, from the bridge: returned as is (or as a view that starts
 * at its first byte), it is sent to the kernel without being copied. It may be larger than asked
 * for only in memory the caller never sees.
 */
export type ReadBufferAlloc = (size: number) => Buffer;

export interface NodeOpener<H> {
  /** A plain value when nothing has to wait (inline file, object fd already open): most OPENs of a
   * file walk then cost no promise, no abort controller and no extra event-loop turn. */
  open(ino: number, flags: number): OpenedFile<H> | Promise<OpenedFile<H>>;
}
export interface NodeReopener<H> {
  /** The handle of a stateless open of ino (OpenedFile.stateless), rebuilt; undefined when ino has
   * no such handle. */
  reopen(ino: number): H | undefined;
}
export interface NodeReader<H> {
  /** `alloc`: where to read into when the data is not already in memory. `request.signal` aborts
   * on INTERRUPT; read it only when the read can wait on something: the signal is made on first
   * use (an AbortController per READ was a tenth of the server's allocations while reading every
   * file of an image). */
  read(
    ino: number,
    file: H,
    offset: number,
    size: number,
    alloc: ReadBufferAlloc,
    request?: { readonly signal: AbortSignal },
  ): Buffer | Promise<Buffer>;
}
export interface NodeReleaser<H> {
  /** The kernel closed the file; called once per handle open returned. */
  release(ino: number, file: H): void;
}
export interface NodeReaddirer {
  /** Entries from position `offset` on, "." and ".." first (positions 0 and 1). */
  readdir(ino: number, offset: number): Iterable<DirEntryInfo>;
}
export interface NodeXattrer {
  /** undefined when the node has no such attribute (ENODATA). */
  getxattr(ino: number, name: string): Buffer | undefined;
  listxattr(ino: number): string[];
}
export interface NodeStatfser {
  statfs(): StatfsInfo;
}
export interface NodeLseeker<H> {
  /** `file`: undefined when the request names no open file. */
  lseek(ino: number, file: H | undefined, offset: number, whence: number): number;
}
/** A filesystem whose answers for some nodes are exactly what a tree index says: the native fast
 * path may answer those (native-fast-path.ts). */
export interface NodeIndexed {
  indexedNodes(): IndexedNodes;
}
export interface IndexedNodes {
  index: TreeIndex;
  /** Index nodes the filesystem answers differently (the fast path leaves them to TypeScript). */
  deferred: Iterable<number>;
  /** The index file, open, when inline contents are read from it rather than through the mapping
   * (inline-reader.ts); the fast path reads its own duplicate of it. */
  indexFd?: number;
  /** The store's objects/ dir: object files by digest (store/layout.ts objectPath), which the fast
   * path opens itself to register their passthrough backing ids. */
  objectsDir?: string;
}
export interface FilesystemDestroyer {
  /** The session ended (the bridge has released every open file first). */
  destroy(): void;
}

export type Filesystem<H extends object = object> = Partial<
  NodeLookuper &
    NodeGetattrer &
    NodeForgetter &
    NodeReadlinker &
    NodeOpener<H> &
    NodeReopener<H> &
    NodeReader<H> &
    NodeReleaser<H> &
    NodeReaddirer &
    NodeXattrer &
    NodeStatfser &
    NodeLseeker<H> &
    NodeIndexed &
    FilesystemDestroyer
>;
