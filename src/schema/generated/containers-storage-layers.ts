// Generated from schemas/containers-storage-layers.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * containers/storage's <graphroot>/<driver>-layers/layers.json: one record per layer, each naming its parent; diff-digest is the sha256 of the layer's uncompressed tar (the image config's diff_id), which the tar-split in <id>.tar-split.gz and the layer's diff directory reproduce.
 */
export type ContainersStorageLayers = {
  id: string;
  parent?: string;
  'diff-digest'?: string;
  'diff-size'?: number;
  'compressed-diff-digest'?: string;
  'compressed-size'?: number;
}[];
