// Image tree indexes, loaded once and shared by every container of the same image. Bounded: the
// least recently used index goes once more than `max` distinct images were served.
import { loadTreeIndex } from '../store/records.js';
import type { TreeIndex } from '../store/tree-index.js';

export class IndexCache {
  private readonly entries = new Map<string, TreeIndex>();

  constructor(
    private readonly storeRoot: string,
    readonly max = 32,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(indexDigest: string): TreeIndex {
    let index = this.entries.get(indexDigest);
    if (index) this.entries.delete(indexDigest);
    else index = loadTreeIndex(this.storeRoot, { indexDigest });
    this.entries.set(indexDigest, index);
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string);
    return index;
  }
}
