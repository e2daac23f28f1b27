// Reads the tree index format (see tree-index-format.ts): a read-only view whose every offset is
// checked once at decode, so a damaged index can never make a reader go out of bounds.
import { createRequire } from 'node:module';
import { DataLossError } from '../errors.js';
import type { FastPathGeometry } from '../native-addon.js';
import {
  DIRENT_SIZE,
  HEADER_SIZE,
  INLINE,
  INODE_SIZE,
  OBJECT_SIZE,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  TREE_INDEX_MAGIC,
  TREE_INDEX_VERSION,
  XATTR_SIZE,
} from './tree-index-format.js';

/** node:crypto on first use: the FUSE server reads indexes without hashing them, and loading the
 * module (with OpenSSL's initialisation) costs it about half a MiB. */
const loadCrypto = (() => {
  let crypto: typeof import('node:crypto') | undefined;
  return () => (crypto ??= createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto'));
})();

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
    return 'sha256:' + loadCrypto().createHash('sha256').update(buf).digest('hex');
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

  /** How many xattrs the whole image has (0: the server answers xattr requests ENOSYS). */
  get xattrTotal(): number {
    return this.xattrCount;
  }

  /** The encoded index and where its sections are: what the native fast path reads
   * (src/mount/fs/native-fast-path.ts). */
  get encoded(): FastPathGeometry & { buffer: Buffer } {
    return {
      buffer: this.buf,
      inodeCount: this.inodeCount,
      direntCount: this.direntCount,
      xattrCount: this.xattrCount,
      poolSize: this.poolSize,
      inodesOff: this.inodesOff,
      direntsOff: this.direntsOff,
      xattrsOff: this.xattrsOff,
      poolOff: this.poolOff,
      objectCount: this.objectCount,
      objectsOff: this.objectsOff,
    };
  }

  get byteLength(): number {
    return this.buf.length;
  }
}
