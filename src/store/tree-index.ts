// The tree index: one image's merged filesystem tree in a compact binary file, built for the
// FUSE server. Inode numbers are positions in the inode table (1 is the root, as FUSE_ROOT_ID),
// so attributes are found in O(1); each directory's entries are sorted by name bytes for binary
// search; names, symlink targets, xattrs and small file contents live in one byte pool.
//
// Format, version 1, all integers little-endian:
//
//   header (64 bytes)
//     0  magic "STRATAIX"        8  u32 version (1)       12 u32 header size (64)
//     16 u32 inode count         20 u32 dirent count       24 u32 xattr count
//     28 u32 object count        32 u32 pool size          36 u32 inodes offset
//     40 u32 dirents offset      44 u32 xattrs offset      48 u32 objects offset
//     52 u32 pool offset         56 u32 flags (0)          60 u32 reserved (0)
//   inodes   (64 bytes each; inode n at inodes offset + (n-1)*64)
//     0 u32 mode (S_IFMT | permission bits)   4 u32 uid     8 u32 gid    12 u32 nlink
//     16 u64 size                             24 i64 mtime seconds        32 u32 mtime ns
//     36 u32 rdev (Linux new_encode_dev)      40 u32 a      44 u32 b     48 u32 c
//     52 u32 first xattr                      56 u32 xattr count         60 u32 parent ino
//       directory: a = first dirent, b = dirent count
//       regular:   a = object index, or 0xffffffff with b = pool offset, c = length (inline)
//       symlink:   b = pool offset, c = target length
//   dirents  (12 bytes: u32 name offset, u32 name length, u32 ino), per directory sorted by name
//   xattrs   (16 bytes: u32 name offset, u32 name length, u32 value offset, u32 value length)
//   objects  (32 bytes each: raw sha256 of a content object), sorted
//   pool     (bytes)
//
// The file is named by its own sha256 in the store, so corruption is caught by fsck; decode()
// still checks every offset so a damaged index can never make a reader go out of bounds.
import { createHash } from 'node:crypto';
import { DataLossError } from './errors.js';

export const TREE_INDEX_MAGIC = 'STRATAIX';
export const TREE_INDEX_VERSION = 1;
const HEADER_SIZE = 64;
const INODE_SIZE = 64;
const DIRENT_SIZE = 12;
const XATTR_SIZE = 16;
const OBJECT_SIZE = 32;
const INLINE = 0xffffffff;

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export type NodeType = 'dir' | 'file' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

const TYPE_BITS: Record<NodeType, number> = {
  dir: S_IFDIR,
  file: S_IFREG,
  symlink: S_IFLNK,
  chardev: S_IFCHR,
  blockdev: S_IFBLK,
  fifo: S_IFIFO,
  socket: S_IFSOCK,
};

/**
 * A node of the in-memory tree that the importer builds. The same object referenced from two
 * directories is one inode (a hard link); directories cannot be hard-linked.
 */
export interface TreeNode {
  type: NodeType;
  /** Permission bits including setuid/setgid/sticky (07777); the type bits come from `type`. */
  mode: number;
  uid: number;
  gid: number;
  mtimeSec: number;
  mtimeNsec?: number;
  xattrs?: Map<string, Buffer>;
  /** dir */
  children?: Map<string, TreeNode>;
  /** file: size in bytes, and either the content object's sha256 hex or inline content. */
  size?: number;
  digest?: string;
  inline?: Buffer;
  /** symlink */
  target?: string;
  /** chardev / blockdev */
  rdevMajor?: number;
  rdevMinor?: number;
}

export function newDir(mode = 0o755, uid = 0, gid = 0, mtimeSec = 0): TreeNode {
  return { type: 'dir', mode, uid, gid, mtimeSec, children: new Map() };
}

export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

export function decodeDev(rdev: number): { major: number; minor: number } {
  return { major: (rdev >>> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) };
}

class Pool {
  private chunks: Buffer[] = [];
  private size = 0;
  private interned = new Map<string, number>();

  add(data: Buffer): number {
    const key = data.length <= 256 ? data.toString('latin1') : undefined;
    if (key !== undefined) {
      const seen = this.interned.get(key);
      if (seen !== undefined) return seen;
    }
    const off = this.size;
    this.chunks.push(data);
    this.size += data.length;
    if (key !== undefined) this.interned.set(key, off);
    return off;
  }

  get length(): number {
    return this.size;
  }

  concat(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}

/** Serialize a tree. Inodes are numbered breadth-first with names in byte order: deterministic. */
export function encodeTreeIndex(root: TreeNode): Buffer {
  if (root.type !== 'dir') throw new TypeError('the root of a tree index must be a directory');
  const order: TreeNode[] = [];
  const inoOf = new Map<TreeNode, number>();
  const parentOf = new Map<TreeNode, number>();
  const links = new Map<TreeNode, number>();
  const sortedChildren = new Map<TreeNode, [Buffer, TreeNode][]>();
  const digests = new Set<string>();

  const visit = (node: TreeNode, parentIno: number): void => {
    links.set(node, (links.get(node) ?? 0) + 1);
    if (inoOf.has(node)) {
      if (node.type === 'dir') throw new TypeError('a directory cannot appear twice in a tree');
      return;
    }
    order.push(node);
    inoOf.set(node, order.length);
    parentOf.set(node, parentIno);
    if (node.type === 'file' && node.inline === undefined) {
      if (!node.digest) throw new TypeError('a file node needs a digest or inline content');
      digests.add(node.digest);
    }
  };
  visit(root, 1);
  for (let i = 0; i < order.length; i++) {
    const node = order[i];
    if (node.type !== 'dir') continue;
    const kids = [...(node.children ?? new Map<string, TreeNode>())].map(
      ([name, kid]) => [Buffer.from(name), kid] as [Buffer, TreeNode],
    );
    kids.sort((x, y) => Buffer.compare(x[0], y[0]));
    sortedChildren.set(node, kids);
    for (const [, kid] of kids) visit(kid, i + 1);
  }

  const objects = [...digests].sort();
  const objectIndex = new Map(objects.map((d, i) => [d, i]));
  const pool = new Pool();
  const direntRecs: number[][] = [];
  const xattrRecs: number[][] = [];
  const inodes = Buffer.alloc(order.length * INODE_SIZE);

  order.forEach((node, i) => {
    const at = i * INODE_SIZE;
    let a = 0;
    let b = 0;
    let c = 0;
    let nlink = links.get(node) ?? 1;
    let size = 0;
    let rdev = 0;
    switch (node.type) {
      case 'dir': {
        const kids = sortedChildren.get(node) ?? [];
        a = direntRecs.length;
        b = kids.length;
        nlink = 2 + kids.filter(([, k]) => k.type === 'dir').length;
        for (const [name, kid] of kids) direntRecs.push([pool.add(name), name.length, inoOf.get(kid)!]);
        break;
      }
      case 'file':
        if (node.inline !== undefined) {
          a = INLINE;
          b = pool.add(node.inline);
          c = node.inline.length;
          size = node.inline.length;
        } else {
          a = objectIndex.get(node.digest!)!;
          size = node.size ?? 0;
        }
        break;
      case 'symlink': {
        const target = Buffer.from(node.target ?? '');
        b = pool.add(target);
        c = target.length;
        size = target.length;
        break;
      }
      case 'chardev':
      case 'blockdev':
        rdev = encodeDev(node.rdevMajor ?? 0, node.rdevMinor ?? 0);
        break;
      default:
        break;
    }
    const xattrs = [...(node.xattrs ?? new Map<string, Buffer>())].sort((x, y) =>
      Buffer.compare(Buffer.from(x[0]), Buffer.from(y[0])),
    );
    const firstXattr = xattrRecs.length;
    for (const [name, value] of xattrs) {
      const nameBuf = Buffer.from(name);
      xattrRecs.push([pool.add(nameBuf), nameBuf.length, pool.add(value), value.length]);
    }
    inodes.writeUInt32LE((TYPE_BITS[node.type] | (node.mode & 0o7777)) >>> 0, at);
    inodes.writeUInt32LE(node.uid >>> 0, at + 4);
    inodes.writeUInt32LE(node.gid >>> 0, at + 8);
    inodes.writeUInt32LE(nlink, at + 12);
    inodes.writeBigUInt64LE(BigInt(size), at + 16);
    inodes.writeBigInt64LE(BigInt(Math.trunc(node.mtimeSec)), at + 24);
    inodes.writeUInt32LE(node.mtimeNsec ?? 0, at + 32);
    inodes.writeUInt32LE(rdev, at + 36);
    inodes.writeUInt32LE(a >>> 0, at + 40);
    inodes.writeUInt32LE(b >>> 0, at + 44);
    inodes.writeUInt32LE(c >>> 0, at + 48);
    inodes.writeUInt32LE(firstXattr, at + 52);
    inodes.writeUInt32LE(xattrs.length, at + 56);
    inodes.writeUInt32LE(node.type === 'dir' ? parentOf.get(node)! : 0, at + 60);
  });

  const dirents = Buffer.alloc(direntRecs.length * DIRENT_SIZE);
  direntRecs.forEach(([off, len, ino], i) => {
    dirents.writeUInt32LE(off, i * DIRENT_SIZE);
    dirents.writeUInt32LE(len, i * DIRENT_SIZE + 4);
    dirents.writeUInt32LE(ino, i * DIRENT_SIZE + 8);
  });
  const xattrTable = Buffer.alloc(xattrRecs.length * XATTR_SIZE);
  xattrRecs.forEach((rec, i) => rec.forEach((v, j) => xattrTable.writeUInt32LE(v, i * XATTR_SIZE + j * 4)));
  const objectTable = Buffer.concat(objects.map((d) => Buffer.from(d, 'hex')));
  const poolBuf = pool.concat();

  const header = Buffer.alloc(HEADER_SIZE);
  const inodesOff = HEADER_SIZE;
  const direntsOff = inodesOff + inodes.length;
  const xattrsOff = direntsOff + dirents.length;
  const objectsOff = xattrsOff + xattrTable.length;
  const poolOff = objectsOff + objectTable.length;
  header.write(TREE_INDEX_MAGIC, 0, 'latin1');
  const fields = [
    TREE_INDEX_VERSION,
    HEADER_SIZE,
    order.length,
    direntRecs.length,
    xattrRecs.length,
    objects.length,
    poolBuf.length,
    inodesOff,
    direntsOff,
    xattrsOff,
    objectsOff,
    poolOff,
    0,
    0,
  ];
  fields.forEach((v, i) => header.writeUInt32LE(v, 8 + i * 4));
  return Buffer.concat([header, inodes, dirents, xattrTable, objectTable, poolBuf]);
}

export interface InodeAttr {
  ino: number;
  /** S_IFMT | permission bits */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  rdev: number;
}

export type FileContent = { kind: 'object'; digest: string } | { kind: 'inline'; data: Buffer };

export interface DirEntry {
  name: Buffer;
  ino: number;
}

function corrupt(what: string): never {
  throw new DataLossError(`tree index is corrupt: ${what}`, { op: 'decode-tree-index' });
}

/** Read-only view over an encoded index. Methods taking an ino throw RangeError when it is unknown. */
export class TreeIndex {
  readonly inodeCount: number;
  readonly rootIno = 1;
  private readonly buf: Buffer;
  private readonly inodesOff: number;
  private readonly direntsOff: number;
  private readonly xattrsOff: number;
  private readonly objectsOff: number;
  private readonly poolOff: number;
  private readonly direntCount: number;
  private readonly xattrCount: number;
  private readonly objectCount: number;
  private readonly poolSize: number;

  private constructor(buf: Buffer) {
    this.buf = buf;
    if (buf.length < HEADER_SIZE || buf.toString('latin1', 0, 8) !== TREE_INDEX_MAGIC) corrupt('bad magic');
    const u32 = (off: number) => buf.readUInt32LE(off);
    if (u32(8) !== TREE_INDEX_VERSION) corrupt(`unsupported version ${u32(8)}`);
    if (u32(12) !== HEADER_SIZE) corrupt('bad header size');
    this.inodeCount = u32(16);
    this.direntCount = u32(20);
    this.xattrCount = u32(24);
    this.objectCount = u32(28);
    this.poolSize = u32(32);
    this.inodesOff = u32(36);
    this.direntsOff = u32(40);
    this.xattrsOff = u32(44);
    this.objectsOff = u32(48);
    this.poolOff = u32(52);
    const sections: [number, number][] = [
      [this.inodesOff, this.inodeCount * INODE_SIZE],
      [this.direntsOff, this.direntCount * DIRENT_SIZE],
      [this.xattrsOff, this.xattrCount * XATTR_SIZE],
      [this.objectsOff, this.objectCount * OBJECT_SIZE],
      [this.poolOff, this.poolSize],
    ];
    let expect = HEADER_SIZE;
    for (const [off, len] of sections) {
      if (off !== expect) corrupt('sections out of order');
      expect = off + len;
    }
    if (expect !== buf.length) corrupt('length does not match header');
    if (this.inodeCount < 1) corrupt('no root inode');
    this.validate();
  }

  static decode(buf: Buffer): TreeIndex {
    return new TreeIndex(buf);
  }

  /** sha256 of an encoded index, as "sha256:<hex>": the name it is stored under. */
  static digest(buf: Buffer): string {
    return 'sha256:' + createHash('sha256').update(buf).digest('hex');
  }

  private validate(): void {
    const inPool = (off: number, len: number) => off + len <= this.poolSize;
    for (let ino = 1; ino <= this.inodeCount; ino++) {
      const at = this.inodeAt(ino);
      const mode = this.buf.readUInt32LE(at);
      const a = this.buf.readUInt32LE(at + 40);
      const b = this.buf.readUInt32LE(at + 44);
      const c = this.buf.readUInt32LE(at + 48);
      if (this.buf.readUInt32LE(at + 52) + this.buf.readUInt32LE(at + 56) > this.xattrCount) {
        corrupt(`inode ${ino} xattrs out of range`);
      }
      switch (mode & S_IFMT) {
        case S_IFDIR: {
          if (a + b > this.direntCount) corrupt(`inode ${ino} dirents out of range`);
          const parent = this.buf.readUInt32LE(at + 60);
          if (parent < 1 || parent > this.inodeCount) corrupt(`inode ${ino} parent out of range`);
          break;
        }
        case S_IFREG:
          if (a === INLINE ? !inPool(b, c) : a >= this.objectCount)
            corrupt(`inode ${ino} content out of range`);
          break;
        case S_IFLNK:
          if (!inPool(b, c)) corrupt(`inode ${ino} symlink target out of range`);
          break;
        case S_IFCHR:
        case S_IFBLK:
        case S_IFIFO:
        case S_IFSOCK:
          break;
        default:
          corrupt(`inode ${ino} has an unknown type`);
      }
    }
    if ((this.buf.readUInt32LE(this.inodeAt(1)) & S_IFMT) !== S_IFDIR) corrupt('root is not a directory');
    for (let i = 0; i < this.direntCount; i++) {
      const at = this.direntsOff + i * DIRENT_SIZE;
      const ino = this.buf.readUInt32LE(at + 8);
      if (!inPool(this.buf.readUInt32LE(at), this.buf.readUInt32LE(at + 4)))
        corrupt(`dirent ${i} name out of range`);
      if (ino < 1 || ino > this.inodeCount) corrupt(`dirent ${i} points at no inode`);
    }
    for (let i = 0; i < this.xattrCount; i++) {
      const at = this.xattrsOff + i * XATTR_SIZE;
      const u = (k: number) => this.buf.readUInt32LE(at + k * 4);
      if (!inPool(u(0), u(1)) || !inPool(u(2), u(3))) corrupt(`xattr ${i} out of range`);
    }
  }

  private inodeAt(ino: number): number {
    if (!Number.isInteger(ino) || ino < 1 || ino > this.inodeCount) throw new RangeError(`no inode ${ino}`);
    return this.inodesOff + (ino - 1) * INODE_SIZE;
  }

  private poolSlice(off: number, len: number): Buffer {
    return this.buf.subarray(this.poolOff + off, this.poolOff + off + len);
  }

  has(ino: number): boolean {
    return Number.isInteger(ino) && ino >= 1 && ino <= this.inodeCount;
  }

  mode(ino: number): number {
    return this.buf.readUInt32LE(this.inodeAt(ino));
  }

  isDir(ino: number): boolean {
    return (this.mode(ino) & S_IFMT) === S_IFDIR;
  }

  attr(ino: number): InodeAttr {
    const at = this.inodeAt(ino);
    const b = this.buf;
    return {
      ino,
      mode: b.readUInt32LE(at),
      uid: b.readUInt32LE(at + 4),
      gid: b.readUInt32LE(at + 8),
      nlink: b.readUInt32LE(at + 12),
      size: Number(b.readBigUInt64LE(at + 16)),
      mtimeSec: Number(b.readBigInt64LE(at + 24)),
      mtimeNsec: b.readUInt32LE(at + 32),
      rdev: b.readUInt32LE(at + 36),
    };
  }

  /** Parent directory of a directory (the root is its own parent). */
  parent(dirIno: number): number {
    return this.buf.readUInt32LE(this.inodeAt(dirIno) + 60);
  }

  /** Number of entries in a directory, not counting "." and "..". */
  entryCount(dirIno: number): number {
    const at = this.inodeAt(dirIno);
    if ((this.buf.readUInt32LE(at) & S_IFMT) !== S_IFDIR) return 0;
    return this.buf.readUInt32LE(at + 44);
  }

  /** The i-th entry (0-based, in name order) of a directory. */
  entry(dirIno: number, i: number): DirEntry | undefined {
    const at = this.inodeAt(dirIno);
    if ((this.buf.readUInt32LE(at) & S_IFMT) !== S_IFDIR) return undefined;
    if (i < 0 || i >= this.buf.readUInt32LE(at + 44)) return undefined;
    const d = this.direntsOff + (this.buf.readUInt32LE(at + 40) + i) * DIRENT_SIZE;
    return {
      name: this.poolSlice(this.buf.readUInt32LE(d), this.buf.readUInt32LE(d + 4)),
      ino: this.buf.readUInt32LE(d + 8),
    };
  }

  /** Binary search of a directory by name; 0 when absent or when dirIno is not a directory. */
  lookup(dirIno: number, name: Buffer | string): number {
    const key = typeof name === 'string' ? Buffer.from(name) : name;
    const at = this.inodeAt(dirIno);
    if ((this.buf.readUInt32LE(at) & S_IFMT) !== S_IFDIR) return 0;
    const first = this.buf.readUInt32LE(at + 40);
    let lo = 0;
    let hi = this.buf.readUInt32LE(at + 44) - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const d = this.direntsOff + (first + mid) * DIRENT_SIZE;
      const off = this.poolOff + this.buf.readUInt32LE(d);
      const cmp = this.buf.compare(key, 0, key.length, off, off + this.buf.readUInt32LE(d + 4));
      if (cmp === 0) return this.buf.readUInt32LE(d + 8);
      if (cmp < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return 0;
  }

  /** Resolve a '/'-separated path from the root without following symlinks; 0 when absent. */
  resolve(path: string): number {
    let ino = this.rootIno;
    for (const part of path.split('/')) {
      if (part === '' || part === '.') continue;
      ino = part === '..' ? this.parent(ino) : this.lookup(ino, part);
      if (ino === 0) return 0;
    }
    return ino;
  }

  readlink(ino: number): Buffer {
    const at = this.inodeAt(ino);
    if ((this.buf.readUInt32LE(at) & S_IFMT) !== S_IFLNK)
      throw new TypeError(`inode ${ino} is not a symlink`);
    return this.poolSlice(this.buf.readUInt32LE(at + 44), this.buf.readUInt32LE(at + 48));
  }

  content(ino: number): FileContent {
    const at = this.inodeAt(ino);
    if ((this.buf.readUInt32LE(at) & S_IFMT) !== S_IFREG) throw new TypeError(`inode ${ino} is not a file`);
    const a = this.buf.readUInt32LE(at + 40);
    if (a === INLINE) {
      return {
        kind: 'inline',
        data: this.poolSlice(this.buf.readUInt32LE(at + 44), this.buf.readUInt32LE(at + 48)),
      };
    }
    return { kind: 'object', digest: this.objectDigest(a) };
  }

  /** The i-th content object (sha256 hex), in sorted order: what gc and fsck walk. */
  objectDigest(i: number): string {
    if (i < 0 || i >= this.objectCount) throw new RangeError(`no object ${i}`);
    const off = this.objectsOff + i * OBJECT_SIZE;
    return this.buf.toString('hex', off, off + OBJECT_SIZE);
  }

  get objectTotal(): number {
    return this.objectCount;
  }

  xattrs(ino: number): { name: string; value: Buffer }[] {
    const at = this.inodeAt(ino);
    const first = this.buf.readUInt32LE(at + 52);
    const count = this.buf.readUInt32LE(at + 56);
    const out: { name: string; value: Buffer }[] = [];
    for (let i = first; i < first + count; i++) {
      const x = this.xattrsOff + i * XATTR_SIZE;
      const u = (k: number) => this.buf.readUInt32LE(x + k * 4);
      out.push({ name: this.poolSlice(u(0), u(1)).toString(), value: this.poolSlice(u(2), u(3)) });
    }
    return out;
  }

  getxattr(ino: number, name: string): Buffer | undefined {
    return this.xattrs(ino).find((x) => x.name === name)?.value;
  }

  get byteLength(): number {
    return this.buf.length;
  }
}
