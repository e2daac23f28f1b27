// tar-stream decodes PAX records as UTF-8 strings, which mangles binary values such as
// security.capability xattrs. RawTap keeps the bytes between the end of one entry's data and the
// next entry's header (only header blocks, never file content), so an entry's own PAX record can
// be re-read byte for byte.
const BLOCK = 512;

const roundUp = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

export class RawTap {
  private chunks: Buffer[] = [];
  /** Stream offset of chunks[0][0]. */
  private base = 0;
  private pos = 0;
  /** Bytes before this offset are entry data that will never be needed. */
  private keepFrom = 0;

  push(chunk: Buffer): void {
    const start = this.pos;
    this.pos += chunk.length;
    if (this.pos <= this.keepFrom) return;
    const from = Math.max(0, this.keepFrom - start);
    if (this.chunks.length === 0) this.base = start + from;
    this.chunks.push(from ? chunk.subarray(from) : chunk);
  }

  /**
   * Called for each entry whose header is at `headerOffset`: returns the header blocks just before
   * it when `want` (else undefined, without copying), then forgets everything up to the end of the
   * entry's `dataSize` bytes of data.
   */
  take(headerOffset: number, dataSize: number, want: boolean): Buffer | undefined {
    let region: Buffer | undefined;
    if (want) {
      const all = Buffer.concat(this.chunks);
      region = Buffer.from(
        all.subarray(Math.max(0, this.keepFrom - this.base), Math.max(0, headerOffset - this.base)),
      );
    }
    this.keepFrom = headerOffset + BLOCK + roundUp(dataSize);
    while (this.chunks.length && this.base + this.chunks[0].length <= this.keepFrom) {
      this.base += this.chunks[0].length;
      this.chunks.shift();
    }
    if (this.chunks.length && this.base < this.keepFrom) {
      this.chunks[0] = this.chunks[0].subarray(this.keepFrom - this.base);
      this.base = this.keepFrom;
    }
    return region;
  }
}

function octal(block: Buffer, off: number, len: number): number {
  if (block[off] & 0x80) {
    let n = 0;
    for (let i = off + 1; i < off + len; i++) n = n * 256 + block[i];
    return n;
  }
  const s = block
    .toString('latin1', off, off + len)
    .replace(/[\0 ]+$/, '')
    .trim();
  return s === '' ? 0 : parseInt(s, 8);
}

/** The last per-entry PAX record ('x') found in a run of header blocks, as raw key/value pairs. */
export function lastPaxRecords(region: Buffer): Map<string, Buffer> | undefined {
  let found: Buffer | undefined;
  for (let at = 0; at + BLOCK <= region.length;) {
    const block = region.subarray(at, at + BLOCK);
    const size = octal(block, 124, 12);
    if (!Number.isFinite(size) || size < 0) return undefined;
    if (block[156] === 0x78) found = region.subarray(at + BLOCK, at + BLOCK + size);
    at += BLOCK + roundUp(size);
  }
  return found ? parsePax(found) : undefined;
}

/** "LEN key=value\n" records; LEN counts bytes, so values may hold any byte. */
export function parsePax(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let at = 0;
  while (at < buf.length) {
    const sp = buf.indexOf(0x20, at);
    if (sp < 0) break;
    const len = parseInt(buf.toString('latin1', at, sp), 10);
    if (!(len > 0) || at + len > buf.length) break;
    const rec = buf.subarray(sp + 1, at + len - 1); // without the trailing '\n'
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(rec.toString('utf8', 0, eq), Buffer.from(rec.subarray(eq + 1)));
    at += len;
  }
  return out;
}

/** PAX mtime "SECONDS[.FRACTION]" to seconds and nanoseconds. */
export function parsePaxTime(value: string): { sec: number; nsec: number } | undefined {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(value.trim());
  if (!m) return undefined;
  let sec = Number(m[2]);
  let nsec = Number(((m[3] ?? '') + '000000000').slice(0, 9));
  if (m[1] === '-') {
    sec = -sec;
    if (nsec) {
      sec -= 1;
      nsec = 1e9 - nsec;
    }
  }
  return { sec, nsec };
}
