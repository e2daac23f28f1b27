// Generated from schemas/image-record.schema.json by scripts/gen-types.mjs. Do not edit.

export type Digest = string;

/**
 * One imported image: images/<manifest hex>.json. Names live in refs/, not here, so that tagging never rewrites a record.
 */
export interface ImageRecord {
  schemaVersion: 1;
  manifestDigest: Digest;
  manifestMediaType: string;
  configDigest: Digest;
  indexDigest: Digest;
  layers: {
    digest: Digest;
    mediaType: string;
    size: number;
    diffId: Digest;
  }[];
  /**
   * regular files in the merged tree
   */
  fileCount: number;
  /**
   * distinct content objects referenced
   */
  objectCount: number;
  /**
   * sum of regular file sizes
   */
  contentBytes: number;
  indexBytes: number;
  architecture?: string;
  os?: string;
  /**
   * what the image was imported from
   */
  source?: string;
  /**
   * when it was imported
   */
  created: string;
}
