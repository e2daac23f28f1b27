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
//
// This module holds the format's constants; tree-index-encode.ts writes it, tree-index.ts reads it.

export const TREE_INDEX_MAGIC = 'STRATAIX';
export const TREE_INDEX_VERSION = 1;
export const HEADER_SIZE = 64;
export const INODE_SIZE = 64;
export const DIRENT_SIZE = 12;
export const XATTR_SIZE = 16;
export const OBJECT_SIZE = 32;
export const INLINE = 0xffffffff;

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export type NodeType = 'dir' | 'file' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

export function decodeDev(rdev: number): { major: number; minor: number } {
  return { major: (rdev >>> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) };
}
