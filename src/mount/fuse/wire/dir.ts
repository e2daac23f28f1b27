// struct fuse_dirent and fuse_direntplus: READDIR / READDIRPLUS reply records, each padded to
// 8 bytes (FUSE_DIRENT_ALIGN). `off` is the offset the kernel passes back to continue after this
// entry.
import { FUSE_ENTRY_OUT_SIZE, readEntryOut, writeEntryOut, writeU64, type FuseEntryOut } from './attr.js';

export const FUSE_NAME_OFFSET = 24;
export const FUSE_NAME_OFFSET_DIRENTPLUS = FUSE_ENTRY_OUT_SIZE + FUSE_NAME_OFFSET;

export function direntAlign(n: number): number {
  return (n + 7) & ~7;
}

export interface FuseDirent {
  ino: number;
  off: number;
  /** DT_* value: (mode & S_IFMT) >> 12 */
  type: number;
  name: Buffer;
}

export interface FuseDirentplus {
  entry_out: FuseEntryOut;
  dirent: FuseDirent;
}

export function direntSize(nameLength: number): number {
  return direntAlign(FUSE_NAME_OFFSET + nameLength);
}

export function direntplusSize(nameLength: number): number {
  return direntAlign(FUSE_NAME_OFFSET_DIRENTPLUS + nameLength);
}

/** Write one record at `at` (the padding is zeroed); returns the bytes used. */
export function writeDirent(buf: Buffer, at: number, d: FuseDirent): number {
  const size = direntSize(d.name.length);
  writeU64(buf, d.ino, at);
  writeU64(buf, d.off, at + 8);
  buf.writeUInt32LE(d.name.length, at + 16);
  buf.writeUInt32LE(d.type, at + 20);
  d.name.copy(buf, at + FUSE_NAME_OFFSET);
  buf.fill(0, at + FUSE_NAME_OFFSET + d.name.length, at + size);
  return size;
}

export function writeDirentplus(buf: Buffer, at: number, d: FuseDirentplus): number {
  writeEntryOut(buf, at, d.entry_out);
  return FUSE_ENTRY_OUT_SIZE + writeDirent(buf, at + FUSE_ENTRY_OUT_SIZE, d.dirent);
}

export function encodeDirents(list: FuseDirent[]): Buffer {
  const buf = Buffer.alloc(list.reduce((n, d) => n + direntSize(d.name.length), 0));
  let at = 0;
  for (const d of list) at += writeDirent(buf, at, d);
  return buf;
}

export function encodeDirentplusList(list: FuseDirentplus[]): Buffer {
  const buf = Buffer.alloc(list.reduce((n, d) => n + direntplusSize(d.dirent.name.length), 0));
  let at = 0;
  for (const d of list) at += writeDirentplus(buf, at, d);
  return buf;
}

function readDirent(buf: Buffer, at: number): FuseDirent {
  const namelen = buf.readUInt32LE(at + 16);
  return {
    ino: Number(buf.readBigUInt64LE(at)),
    off: Number(buf.readBigUInt64LE(at + 8)),
    type: buf.readUInt32LE(at + 20),
    name: Buffer.from(buf.subarray(at + FUSE_NAME_OFFSET, at + FUSE_NAME_OFFSET + namelen)),
  };
}

export function decodeDirents(buf: Buffer): FuseDirent[] {
  const out: FuseDirent[] = [];
  for (let at = 0; at + FUSE_NAME_OFFSET <= buf.length;) {
    const d = readDirent(buf, at);
    out.push(d);
    at += direntSize(d.name.length);
  }
  return out;
}

export function decodeDirentplusList(buf: Buffer): FuseDirentplus[] {
  const out: FuseDirentplus[] = [];
  for (let at = 0; at + FUSE_NAME_OFFSET_DIRENTPLUS <= buf.length;) {
    const entry_out = readEntryOut(buf, at);
    const dirent = readDirent(buf, at + FUSE_ENTRY_OUT_SIZE);
    out.push({ entry_out, dirent });
    at += direntplusSize(dirent.name.length);
  }
  return out;
}
