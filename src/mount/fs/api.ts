// The filesystem side of the FUSE server, in nodes rather than wire structs: small capability
// interfaces, each optional. bridge.ts adapts whatever subset a filesystem implements to the
// protocol; a missing capability answers ENOSYS. Methods signal errnos by throwing FuseError.
import type { InodeAttr } from '../../store/tree-index.js';

/** A node's attributes are the tree index's inode attributes (placeholders use the same shape). */
export type NodeAttr = InodeAttr;

export interface DirEntryInfo {
  name: Buffer;
  ino: number;
  /** S_IFMT bits are enough (for the dirent type). */
  mode: number;
}

export interface OpenedFile {
  fh: number;
  /** An fd on the file's content, for a passthrough backing id; absent for content held in memory. */
  fd?: number;
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
export interface NodeOpener {
  /** A plain value when nothing has to wait (inline file, object fd already open): most OPENs of a
   * file walk then cost no promise, no abort controller and no extra event-loop turn. */
  open(ino: number, flags: number): OpenedFile | Promise<OpenedFile>;
}
export interface NodeReader {
  /** `request.signal` aborts on INTERRUPT; read it only when the read can wait on something: the
   * signal is made on first use (an AbortController per READ was a tenth of the server's
   * allocations while reading every file of an image). */
  read(
    ino: number,
    fh: number,
    offset: number,
    size: number,
    request?: { readonly signal: AbortSignal },
  ): Buffer | Promise<Buffer>;
}
export interface NodeReleaser {
  release(ino: number, fh: number): void;
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
export interface NodeLseeker {
  lseek(ino: number, fh: number, offset: number, whence: number): number;
}
export interface FilesystemDestroyer {
  /** The session ended: release every handle. */
  destroy(): void;
}

export type Filesystem = Partial<
  NodeLookuper &
    NodeGetattrer &
    NodeForgetter &
    NodeReadlinker &
    NodeOpener &
    NodeReader &
    NodeReleaser &
    NodeReaddirer &
    NodeXattrer &
    NodeStatfser &
    NodeLseeker &
    FilesystemDestroyer
>;
