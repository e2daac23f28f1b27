import type { Readable } from 'node:stream';

export interface ObjectSink {
  /** Store one regular file's content; resolves when the object exists in the store. */
  write(
    content: Readable,
    size: number,
  ): Promise<{ digest: string /* sha256 hex, no prefix */; size: number }>;
}

export interface ApplyLayerOptions {
  /** Files of at most this many bytes are kept inline in the tree instead of in the sink. */
  inlineMax?: number;
  /** Names the layer in error messages (its digest). */
  layer?: string;
  /** How many sink writes may still be finishing (fsync, rename) while the tar is read on. */
  concurrency?: number;
}

export interface LayerStats {
  entries: number;
  files: number;
  /** Bytes of regular file content, inline or not. */
  fileBytes: number;
  inlineFiles: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  devices: number;
  whiteouts: number;
  opaqueDirs: number;
}
