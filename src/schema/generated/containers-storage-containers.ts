// Generated from schemas/containers-storage-containers.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * containers/storage's <graphroot>/<driver>-containers/containers.json: one record per container (podman's bundle is <driver>-containers/<id>/userdata); the fields strata reads. `image` is the image id, the sha256 hex of its config.
 */
export type ContainersStorageContainers = {
  id: string;
  names?: string[] | null;
  image?: string;
  layer?: string;
  metadata?: string;
}[];
