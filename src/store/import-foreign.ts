// Imports from the stores of the runtimes strata sits beside: containerd's content store (for the
// containerd shim's Create, and `strata image import containerd:NAME`) and podman's
// containers/storage (for strata-runtime, and `strata image import containers-storage:NAME`).
// Both go through importImage, so an image already complete in strata's store costs one record
// check, and a new one shares every object it has in common with what the store holds.
import { importImage, type ImportOptions, type ImportResult } from './import.js';

export {
  CRI_IMAGE_NAME_ANNOTATION,
  containerdImageOf,
  resolveContainerdImage,
} from './source/containerd-content.js';
export { containersStorageImageOfBundle } from './source/containers-storage.js';
import type { Store } from './store.js';
import type { ContainerdLocation } from './source/containerd-content.js';
import { DEFAULT_PLATFORM } from './source/open-source.js';
import type { Platform } from './source/types.js';

export interface ContainerdImportOptions extends ImportOptions {
  /** containerd's root, socket and namespace (defaults: containerd's own, namespace `default`). */
  containerd?: ContainerdLocation;
  /** The image's target descriptor when known (e.g. from the container record): ctr is not run. */
  target?: { digest: string; mediaType: string; size?: number };
  /** Default linux/amd64. */
  platform?: Platform;
}

/**
 * Imports containerd's image `name` (as `ctr images ls` names it) into `store`, verifying every
 * blob; the image keeps containerd's manifest digest and config, and is named `name` unless
 * `opts.name` says otherwise.
 */
export async function importFromContainerd(
  store: Store,
  name: string,
  opts: ContainerdImportOptions = {},
): Promise<ImportResult> {
  const { openContainerdImage } = await import('./source/containerd-content.js');
  return importImage(store, `containerd:${name}`, {
    ...opts,
    openSource: () =>
      openContainerdImage({
        ...opts.containerd,
        name,
        target: opts.target,
        platform: opts.platform ?? DEFAULT_PLATFORM,
      }),
  });
}

export interface ContainersStorageImportOptions extends ImportOptions {
  /** containers/storage's graph root (default: storage.conf's graphroot, else /var/lib/containers/storage). */
  root?: string;
  /** storage.conf to read graphroot from (default $CONTAINERS_STORAGE_CONF, else /etc/containers/storage.conf). */
  storageConf?: string;
}

/**
 * Imports podman's image `name` (a name, an image id or a unique id prefix) from
 * containers/storage's overlay driver into `store`: strata's image then has podman's config, so
 * its config digest is podman's image id.
 */
export async function importFromContainersStorage(
  store: Store,
  name: string,
  opts: ContainersStorageImportOptions = {},
): Promise<ImportResult> {
  const { openContainersStorageImage } = await import('./source/containers-storage.js');
  return importImage(store, `containers-storage:${name}`, {
    ...opts,
    openSource: () => openContainersStorageImage({ root: opts.root, storageConf: opts.storageConf, name }),
  });
}
