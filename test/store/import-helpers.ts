// Shared by the store tests: a fresh store in a temp dir, and one holding the busybox fixture
// (imported with the real source opener and layer applier).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../src/store/store.js';

export async function tempStore(): Promise<{ store: Store; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-store-'));
  return {
    store: await openStore(join(dir, 'root')),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A temp store holding the busybox fixture under `name`. */
export async function storeWithBusybox(name = 'bb'): Promise<{
  store: Store;
  cleanup: () => Promise<void>;
  digest: string;
}> {
  const { busyboxImage } = await import('../fixtures/images.js');
  const { importImage } = await import('../../src/store/import.js');
  const img = await busyboxImage();
  const t = await tempStore();
  const r = await importImage(t.store, `oci:${img.ociLayout}:latest`, {
    name,
  });
  return { ...t, digest: r.record.manifestDigest };
}
