// The open files of one mount by file handle: FilesystemBridge's only handle table (the
// filesystem behind it returns a handle object from open and gets it back on read and release,
// as go-fuse's fs/bridge.go keeps its files). add() numbers files from 1 up and reuses released
// numbers, so the table only grows to the most files ever open at once, and small fhs index an
// array; a caller that numbers files itself (set) may also use huge ones, kept in a Map. A Map
// for all of them reallocated its table as files opened and closed, and those tables outlived
// scavenges into the old generation (bench-fs reading every file without passthrough: about a
// tenth of what was promoted).
const DENSE_FH_LIMIT = 1 << 16;

export class FileTable<T extends object> {
  /** Slot 0 stays empty for add(): the kernel passes fh 0 for requests that have none. */
  private readonly dense: (T | undefined)[] = [undefined];
  private readonly sparse = new Map<number, T>();
  /** Released numbers, reused last-in first-out by add(). */
  private readonly free: number[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  private isDense(fh: number): boolean {
    return Number.isInteger(fh) && fh >= 0 && fh < DENSE_FH_LIMIT;
  }

  /** Opens `file` under a number no open file has, never 0. */
  add(file: T): number {
    let fh = this.free.pop();
    // A number set() took since it was freed is skipped.
    while (fh !== undefined && this.dense[fh] !== undefined) fh = this.free.pop();
    if (fh === undefined) fh = this.dense.push(undefined) - 1;
    this.dense[fh] = file;
    this.count++;
    return fh;
  }

  set(fh: number, file: T): void {
    this.take(fh); // a replaced entry is counted out here
    this.count++;
    if (!this.isDense(fh)) {
      this.sparse.set(fh, file);
      return;
    }
    while (this.dense.length <= fh) this.dense.push(undefined);
    this.dense[fh] = file;
  }

  get(fh: number): T | undefined {
    if (!this.isDense(fh)) return this.sparse.get(fh);
    return fh < this.dense.length ? this.dense[fh] : undefined;
  }

  /** Removes and returns the file open as fh. */
  take(fh: number): T | undefined {
    let file: T | undefined;
    if (this.isDense(fh)) {
      file = this.dense[fh];
      if (file !== undefined) {
        this.dense[fh] = undefined;
        if (fh > 0) this.free.push(fh);
      }
    } else {
      file = this.sparse.get(fh);
      this.sparse.delete(fh);
    }
    if (file !== undefined) this.count--;
    return file;
  }

  entries(): [number, T][] {
    const all = [...this.sparse];
    this.dense.forEach((file, fh) => file && all.push([fh, file]));
    return all;
  }

  clear(): void {
    this.dense.length = 1;
    this.dense[0] = undefined;
    this.sparse.clear();
    this.free.length = 0;
    this.count = 0;
  }
}
