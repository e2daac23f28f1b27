// What the layer applier takes and reports. It writes file contents only through the store's
// ObjectSink (src/store/types.ts).
export interface ApplyLayerOptions {
  /** Files of at most this many bytes are kept inline in the tree instead of in the sink. */
  inlineMax?: number;
  /** Names the layer in error messages (its digest). */
  layer?: string;
  /** Names where the layer comes from in error messages (the image source's description). */
  source?: string;
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
