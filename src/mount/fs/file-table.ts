// Open files by file handle, for FilesystemBridge, without a Map's churn: small fhs
// (ImageFilesystem reuses them) index an array; others, from a filesystem that counts up
// forever, go in a Map. A Map for all of them reallocated its table as files opened and closed,
// and those tables outlived scavenges into the old generation (bench-fs reading every file
// without passthrough: about a tenth of what was promoted).
const DENSE_FH_LIMIT = 1 << 16;

export class FileTable<T extends object> {
  private readonly dense: (T | undefined)[] = [];
  private readonly sparse = new Map<number, T>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  private isDense(fh: number): boolean {
    return Number.isInteger(fh) && fh >= 0 && fh < DENSE_FH_LIMIT;
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

  /** Removes and returns the file open as fh. */
  take(fh: number): T | undefined {
    let file: T | undefined;
    if (this.isDense(fh)) {
      file = this.dense[fh];
      if (file !== undefined) this.dense[fh] = undefined;
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
    this.dense.length = 0;
    this.sparse.clear();
    this.count = 0;
  }
}
