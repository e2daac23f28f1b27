// Shared by the tests that serve real images on real mounts: import a fixture image into a
// fresh temp store, make temp mount points, and check that nothing leaked afterwards.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importImage } from '../../src/store/import.js';
import { readMountinfo } from '../../src/mount/mountinfo.js';
import { openStore } from '../../src/store/store.js';
import type { TestImage } from '../fixtures/images.js';

export { fdSnapshot, fdsLeftSince, threadCount, waitFor, type FdSnapshot } from '../native/mini-fuse.js';

export interface TempStore {
  /** The temp dir holding the store and the mount points. */
  dir: string;
  root: string;
  /** strata mounts under dir. */
  mounts(): string[];
  /** A fresh empty directory to mount on. */
  mountPoint(): Promise<string>;
  cleanup(): Promise<void>;
}

/** A temp dir holding a store with the given images imported under the given names. */
export async function tempStore(images: Record<string, TestImage>): Promise<TempStore> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-mount-test-'));
  const root = join(dir, 'store');
  const store = await openStore(root);
  for (const [name, img] of Object.entries(images)) {
    await importImage(store, `oci:${img.ociLayout}:${img.tag}`, { name });
  }
  let n = 0;
  return {
    dir,
    root,
    mounts: () =>
      strataMounts()
        .map((m) => m.mountPoint)
        .filter((p) => p.startsWith(dir + '/')),
    mountPoint: async () => {
      const p = join(dir, `mnt${n++}`);
      await mkdir(p);
      return p;
    },
    cleanup: async () => {
      const left = strataMounts().filter((m) => m.mountPoint.startsWith(dir));
      if (left.length > 0) throw new Error(`mounts left under ${dir}: ${left.map((m) => m.mountPoint)}`);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Mount points of every strata FUSE mount in this namespace. */
export function strataMounts(): { mountPoint: string; source: string }[] {
  return readMountinfo().filter((m) => m.fsType === 'fuse.strata');
}
