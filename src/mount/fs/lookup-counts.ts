// The kernel's lookup count per node id, for FilesystemBridge. Image node ids are small and dense
// (the index's inode numbers, placeholders just above), so they index an array of counts that
// never shrinks; larger ones go in a Map. A Map for all of them was reallocated as a walk grew it
// and FORGETs after drop_caches shrank it, and each table outlived scavenges into the old
// generation (bench-fs without passthrough: about a fifth of what was promoted once the
// per-request Maps were gone).
const DENSE_ID_LIMIT = 1 << 18;

export class LookupCounts {
  private readonly dense: number[] = [];
  private readonly sparse = new Map<number, number>();

  private isDense(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < DENSE_ID_LIMIT;
  }

  /** 0 when forgotten or never seen. */
  get(id: number): number {
    return (this.isDense(id) ? this.dense[id] : this.sparse.get(id)) ?? 0;
  }

  add(id: number): void {
    if (!this.isDense(id)) {
      this.sparse.set(id, (this.sparse.get(id) ?? 0) + 1);
      return;
    }
    while (this.dense.length <= id) this.dense.push(0);
    this.dense[id]++;
  }

  /** Takes n lookups off; true when that was all of them (the node is forgotten now), false when
   * some remain or the id was unknown. */
  forget(id: number, n: number): boolean {
    const have = this.get(id);
    if (have === 0) return false;
    const left = have > n ? have - n : 0;
    if (!this.isDense(id)) {
      if (left === 0) this.sparse.delete(id);
      else this.sparse.set(id, left);
    } else {
      this.dense[id] = left;
    }
    return left === 0;
  }

  clear(): void {
    this.dense.length = 0;
    this.sparse.clear();
  }
}
