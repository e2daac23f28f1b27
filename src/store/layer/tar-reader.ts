// A push tar parser for the layer applier: chunks in, synchronous callbacks out (a header, the
// entry's data as subarrays of the chunks it arrived in, the entry's end). It reads exactly what
// tar-stream 3's extract reads, with the same header decoding and the same errors (ustar and GNU
// headers only, checksum checked, GNU long names, PAX records, a PAX global header merged into the
// next per-entry one), but without a stream and a promise per entry: for a layer of a few thousand
// files, tar-stream's per-entry machinery was about half of the applier's CPU time (docs/
// architecture.md, "Registry pull"). It also hands over the raw bytes of the entry's own PAX
// record, which tar-stream decodes as UTF-8 (mangling binary xattr values).
import { parsePax } from './raw-pax.js';

export type TarEntryType =
  | 'file'
  | 'link'
  | 'symlink'
  | 'character-device'
  | 'block-device'
  | 'directory'
  | 'fifo'
  | 'contiguous-file'
  | 'pax-header'
  | 'pax-global-header'
  | 'gnu-long-link-path'
  | 'gnu-long-path';

/**
 * A header as tar-stream gives it. Numbers are null where a base-256 field is malformed; `type`
 * is null for a type flag it does not know; `byteOffset` is where the entry's data starts.
 */
export interface TarHeader {
  name: string;
  mode: number | null;
  uid: number | null;
  gid: number | null;
  size: number;
  mtime: Date;
  type: TarEntryType | null;
  linkname: string | null;
  uname: string;
  gname: string;
  devmajor: number | null;
  devminor: number | null;
  byteOffset: number;
  pax: Record<string, string> | null;
}

const BLOCK = 512;
/** A GNU long name or PAX record larger than this is refused (tar-stream's limit). */
const MAX_HEADER_SIZE = 4 * 1024 * 1024;

export interface TarVisitor {
  /** `rawPax`: the entry's own PAX record as raw key/value bytes, when it has one. */
  header(h: TarHeader, rawPax: Map<string, Buffer> | undefined): void;
  /** Part of the current entry's data (a view into the pushed chunk: copy it to keep it longer). */
  data(chunk: Buffer): void;
  /** The current entry's data is complete. */
  end(): void;
}

type State = 'header' | 'data' | 'long' | 'skip';

export class TarReader {
  private state: State = 'header';
  /** Bytes of data (or long header, or padding) still to come in the current state. */
  private missing = 0;
  /** Partial header or long-header bytes carried over from earlier chunks. */
  private carry: Buffer[] = [];
  private carried = 0;
  private header: TarHeader | undefined;
  private pax: Record<string, string> | null = null;
  private paxGlobal: Record<string, string> | null = null;
  private rawPax: Buffer | undefined;
  private gnuLongPath: string | null = null;
  private gnuLongLinkPath: string | null = null;
  /** Stream offset of the next byte pushed. */
  private offset = 0;
  private padding = 0;

  push(chunk: Buffer, v: TarVisitor): void {
    let at = 0;
    const len = chunk.length;
    while (at < len) {
      switch (this.state) {
        case 'header': {
          let block: Buffer;
          if (this.carried === 0 && len - at >= BLOCK) {
            block = chunk.subarray(at, at + BLOCK);
            at += BLOCK;
          } else {
            const take = Math.min(BLOCK - this.carried, len - at);
            this.carry.push(chunk.subarray(at, at + take));
            this.carried += take;
            at += take;
            if (this.carried < BLOCK) break;
            block = Buffer.concat(this.carry, BLOCK);
            this.carry = [];
            this.carried = 0;
          }
          this.offset += BLOCK;
          this.onHeader(block, v);
          break;
        }
        case 'data': {
          const take = Math.min(this.missing, len - at);
          this.missing -= take;
          this.offset += take;
          v.data(at === 0 && take === len ? chunk : chunk.subarray(at, at + take));
          at += take;
          if (this.missing === 0) this.endData(v);
          break;
        }
        case 'long': {
          const take = Math.min(this.missing - this.carried, len - at);
          this.carry.push(chunk.subarray(at, at + take));
          this.carried += take;
          this.offset += take;
          at += take;
          if (this.carried < this.missing) break;
          const buf = Buffer.concat(this.carry, this.carried);
          this.carry = [];
          this.carried = 0;
          this.onLongHeader(buf);
          this.skip(overflow(buf.length));
          break;
        }
        case 'skip': {
          const take = Math.min(this.missing, len - at);
          this.missing -= take;
          this.offset += take;
          at += take;
          if (this.missing === 0) this.state = 'header';
          break;
        }
      }
    }
  }

  /** The input ended: anything but a clean end between entries is an error. */
  end(): void {
    const clean =
      (this.state === 'header' && this.carried === 0) || (this.state === 'skip' && this.missing === 0);
    if (!clean) throw new Error('Unexpected end of data');
  }

  private skip(n: number): void {
    this.missing = n;
    this.state = n > 0 ? 'skip' : 'header';
  }

  private endData(v: TarVisitor): void {
    v.end();
    this.skip(this.padding);
  }

  private onHeader(block: Buffer, v: TarVisitor): void {
    const h = decodeHeader(block);
    if (!h) return; // a zero block: end-of-archive marker or padding, read on as tar-stream does
    h.byteOffset = this.offset;
    switch (h.type) {
      case 'gnu-long-path':
      case 'gnu-long-link-path':
      case 'pax-global-header':
      case 'pax-header':
        if (h.size > MAX_HEADER_SIZE) throw new Error('Header exceeds max size');
        // An empty one is read as nothing at all, as tar-stream does.
        this.header = h;
        this.missing = h.size;
        if (h.size > 0) this.state = 'long';
        return;
    }
    const raw = this.applyLongHeaders(h);
    if (!((h.size as number | null)! >= 0)) throw new Error('Invalid header'); // null passes, as in tar-stream
    const wantRaw = raw !== undefined && h.pax != null && Object.keys(h.pax).some(isSchilyXattr);
    v.header(h, wantRaw ? parsePax(raw) : undefined);
    // A directory's size is not data (tar-stream reads what follows as the next header).
    if (h.size === 0 || h.type === 'directory') {
      v.end();
      return;
    }
    // A size tar-stream lets through but cannot count down (null from a bad base-256 field, or
    // beyond 2^53) would never end: refused (the applier refuses such files first, as absurd).
    if (!Number.isSafeInteger(h.size)) throw new Error('Invalid header');
    this.missing = h.size;
    this.padding = overflow(h.size);
    this.state = 'data';
  }

  private onLongHeader(buf: Buffer): void {
    switch (this.header!.type) {
      case 'gnu-long-path':
        this.gnuLongPath = decodeStr(buf, 0, buf.length);
        break;
      case 'gnu-long-link-path':
        this.gnuLongLinkPath = decodeStr(buf, 0, buf.length);
        break;
      case 'pax-global-header':
        this.paxGlobal = decodePax(buf);
        break;
      case 'pax-header':
        this.pax = this.paxGlobal === null ? decodePax(buf) : { ...this.paxGlobal, ...decodePax(buf) };
        this.rawPax = buf;
        break;
    }
    this.header = undefined;
  }

  private applyLongHeaders(h: TarHeader): Buffer | undefined {
    if (this.gnuLongPath !== null) {
      h.name = this.gnuLongPath;
      this.gnuLongPath = null;
    }
    if (this.gnuLongLinkPath !== null) {
      h.linkname = this.gnuLongLinkPath;
      this.gnuLongLinkPath = null;
    }
    const raw = this.rawPax;
    this.rawPax = undefined;
    if (this.pax) {
      if (this.pax.path) h.name = this.pax.path;
      if (this.pax.linkpath) h.linkname = this.pax.linkpath;
      if (this.pax.size) h.size = parseInt(this.pax.size, 10);
      h.pax = this.pax;
      this.pax = null;
      return raw;
    }
    return undefined;
  }
}

function isSchilyXattr(key: string): boolean {
  return key.startsWith('SCHILY.xattr.');
}

function overflow(size: number): number {
  const r = size % BLOCK;
  return r && BLOCK - r;
}

const TYPES: Record<number, TarHeader['type']> = {
  0: 'file',
  1: 'link',
  2: 'symlink',
  3: 'character-device',
  4: 'block-device',
  5: 'directory',
  6: 'fifo',
  7: 'contiguous-file',
  72: 'pax-header',
  55: 'pax-global-header',
  27: 'gnu-long-link-path',
  28: 'gnu-long-path',
  30: 'gnu-long-path',
};

/** One 512-byte header block as tar-stream's headers.decode reads it; null for a zero block. */
export function decodeHeader(buf: Buffer): TarHeader | null {
  let typeflag = buf[156] === 0 ? 0 : buf[156] - 48;
  const c = cksum(buf);
  if (c === 8 * 32) return null; // all zero
  if (c !== decodeOct(buf, 148, 8)) {
    throw new Error('Invalid tar header. Maybe the tar is corrupted or it needs to be gunzipped?');
  }
  let name = decodeStr(buf, 0, 100);
  if (isUstar(buf)) {
    if (buf[345]) name = `${decodeStr(buf, 345, 155)}/${name}`;
  } else if (!isGnu(buf)) {
    throw new Error('Invalid tar header: unknown format.');
  }
  if (typeflag === 0 && name && name[name.length - 1] === '/') typeflag = 5;
  // Fields are numbers or, for a malformed base-256 value, null (as tar-stream gives them).
  return {
    name,
    mode: decodeOct(buf, 100, 8),
    uid: decodeOct(buf, 108, 8),
    gid: decodeOct(buf, 116, 8),
    size: decodeOct(buf, 124, 12) as number,
    byteOffset: 0,
    mtime: new Date(1000 * (decodeOct(buf, 136, 12) as number)),
    type: TYPES[typeflag] ?? null,
    linkname: buf[157] === 0 ? null : decodeStr(buf, 157, 100),
    uname: decodeStr(buf, 265, 32),
    gname: decodeStr(buf, 297, 32),
    devmajor: decodeOct(buf, 329, 8),
    devminor: decodeOct(buf, 337, 8),
    pax: null,
  };
}

// "ustar\0" then "00" (POSIX), or "ustar " then " \0" (GNU, old GNU).
const USTAR_MAGIC = Buffer.from('ustar\0', 'latin1');
const GNU_MAGIC = Buffer.from('ustar  \0', 'latin1');

function isUstar(b: Buffer): boolean {
  return b.compare(USTAR_MAGIC, 0, USTAR_MAGIC.length, 257, 257 + USTAR_MAGIC.length) === 0;
}

function isGnu(b: Buffer): boolean {
  return b.compare(GNU_MAGIC, 0, GNU_MAGIC.length, 257, 257 + GNU_MAGIC.length) === 0;
}

function cksum(b: Buffer): number {
  let sum = 8 * 32;
  for (let i = 0; i < 148; i++) sum += b[i];
  for (let i = 156; i < BLOCK; i++) sum += b[i];
  return sum;
}

function decodeStr(b: Buffer, off: number, len: number): string {
  let end = off;
  const max = off + len;
  while (end < max && b[end] !== 0) end++;
  return b.toString('utf8', off, end);
}

/** Octal, or base-256 when the first byte has its high bit set (GNU, for big sizes and times). */
function decodeOct(b: Buffer, off: number, len: number): number | null {
  if (b[off] & 0x80) return parse256(b, off, len);
  const max = off + len;
  let at = off;
  while (at < max && b[at] === 32) at++;
  let end = at;
  while (end < max && b[end] !== 32) end++;
  while (at < end && b[at] === 0) at++;
  if (end === at) return 0;
  return parseInt(b.toString('latin1', at, end), 8);
}

function parse256(b: Buffer, off: number, len: number): number | null {
  // 0x80: positive; 0xff: two's complement negative; anything else is null, as in tar-stream (a
  // null size passes its size check and the applier refuses it as absurd).
  let positive: boolean;
  if (b[off] === 0x80) positive = true;
  else if (b[off] === 0xff) positive = false;
  else return null;
  let sum = 0;
  for (let i = off + 1; i < off + len; i++) sum = sum * 256 + (positive ? b[i] : 0xff - b[i]);
  return positive ? sum : -sum;
}

/** tar-stream's decodePax: "LEN key=value\n" records as UTF-8 strings, stopping at the first bad one. */
function decodePax(buf: Buffer): Record<string, string> {
  const result: Record<string, string> = {};
  while (buf.length) {
    let i = 0;
    while (i < buf.length && buf[i] !== 32) i++;
    const len = parseInt(buf.toString('utf8', 0, i), 10);
    if (!len) return result;
    const b = buf.toString('utf8', i + 1, len - 1);
    const keyIndex = b.indexOf('=');
    if (keyIndex === -1) return result;
    result[b.slice(0, keyIndex)] = b.slice(keyIndex + 1);
    buf = buf.subarray(len);
  }
  return result;
}
