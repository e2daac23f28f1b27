// The store's role interfaces (containerd's content.Provider / Ingester / Manager, narrowed to
// what strata needs) and the shapes that cross module boundaries. The importer, gc and fsck work
// against these; the local disk store (store.ts) is the one implementation today.
import type { Readable } from 'node:stream';
import type { ImageSource } from './source/types.js';
import type { TreeNode } from './tree-index-encode.js';

/** Reads content objects (sha256 hex or "sha256:<hex>"). */
export interface Provider {
  objectPath(digest: string): string;
  hasObject(digest: string, size?: number): Promise<boolean>;
}

/** Where the layer applier puts file contents; answers the content's sha256 hex. */
export interface ObjectSink {
  write(content: Readable, size: number): Promise<{ digest: string; size: number }>;
  /** The same for content already in memory, in pieces (optional: a faster path). */
  writeChunks?(chunks: Buffer[], size: number): Promise<{ digest: string; size: number }>;
}

/** Writes content objects: a sink plus the step that makes everything written durable. */
export interface Ingester extends ObjectSink {
  /** Make every object written so far durable and visible under objects/. */
  commit(): Promise<void>;
  /** Forget everything not yet committed (temp files are removed). */
  abort(): Promise<void>;
}

/** Enumerates and removes content (gc, fsck). */
export interface Manager {
  listObjects(): AsyncIterable<{ digest: string; path: string }>;
  deleteObject(digest: string): Promise<void>;
}

export type OpenSource = (spec: string) => Promise<ImageSource>;
export type ApplyLayer = (
  root: TreeNode,
  tar: Readable,
  sink: ObjectSink,
  opts?: { inlineMax?: number; layer?: string; source?: string },
) => Promise<unknown>;
