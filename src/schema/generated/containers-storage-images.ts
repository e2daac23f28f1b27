// Generated from schemas/containers-storage-images.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * containers/storage's <graphroot>/<driver>-images/images.json (podman, buildah, CRI-O): one record per image; the fields strata reads. The image id is the sha256 hex of its config, stored as big data under the key "sha256:<id>".
 */
export type ContainersStorageImages = {
  id: string;
  digest?: string;
  names?: string[] | null;
  layer: string;
  'big-data-names'?: string[] | null;
  'big-data-sizes'?: {
    [k: string]: number;
  } | null;
  'big-data-digests'?: {
    [k: string]: string;
  } | null;
  created?: string;
}[];
