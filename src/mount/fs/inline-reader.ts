// Inline file contents (files of up to 4 KiB, most of a tree index's bytes) read with pread(2)
// from the index file rather than through the server's mapping of it: read through the mapping,
// every inline file a workload touched stayed in the server's RSS (bench-fs, after reading every
// file: 4.8 MiB of the index resident, 1 MiB after a walk). The kernel keeps the pages cached
// either way, and FOPEN_KEEP_CACHE keeps the file's own contents in its page cache after the READ.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export class InlineReader {
  private fileFd: number;
  private readonly size: number;

  /** `path`: the index file the TreeIndex was decoded from. */
  constructor(path: string) {
    this.fileFd = openSync(path, 'r');
    this.size = fstatSync(this.fileFd).size;
  }

  /**
   * Bytes [offset, offset + size) of `data`, an inline content view of the index buffer (clamped
   * to its end, as a READ past the end of a file returns less). From the file when data's position
   * in it is known, else (closed, or an index buffer that is not the whole file) from data itself.
   */
  read(data: Buffer, offset: number, size: number): Buffer {
    const start = Math.min(offset, data.length);
    const n = Math.min(size, data.length - start);
    // An ArrayBuffer exactly the file's size is the whole file (mapped or read): a view's
    // byteOffset in it is then its offset in the file.
    if (this.fileFd < 0 || n <= 0 || data.buffer.byteLength !== this.size)
      return data.subarray(start, start + n);
    const out = Buffer.allocUnsafe(n);
    try {
      if (readSync(this.fileFd, out, 0, n, data.byteOffset + start) === n) return out;
    } catch {
      // the mapping still has the bytes
    }
    return data.subarray(start, start + n);
  }

  /** The index file's fd (-1 once closed). */
  get fd(): number {
    return this.fileFd;
  }

  close(): void {
    if (this.fileFd < 0) return;
    closeSync(this.fileFd);
    this.fileFd = -1;
  }
}
