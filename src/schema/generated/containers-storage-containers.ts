// Generated from schemas/containers-storage-containers.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * containers/storage's <graphroot>/<driver>-containers/containers.json, as podman 4 writes it: one record per container (podman's bundle is <driver>-containers/<id>/userdata); the fields strata reads. `image` is the image id, the sha256 hex of its config. Everything else is containers/storage's and is kept as it is.
 *
 * @maxItems 100000
 */
export type ContainersStorageContainers = {
  id: string;
  /**
   * @maxItems 1000
   */
  names?: string[] | null;
  image?: string;
  layer?: string;
  metadata?: string;
}[];
