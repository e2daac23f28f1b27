// Generated from schemas/containers-storage-containers.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * containers/storage's record of its containers (<graphroot>/<driver>-containers/containers.json), as podman 4 writes it. strata-runtime's daemon side reads only each entry's id and image (the image ID: the sha256 of the image config); everything else is containers/storage's and is kept as it is.
 *
 * @maxItems 100000
 */
export type ContainersStorageContainers = {
  id: string;
  image?: string;
}[];
