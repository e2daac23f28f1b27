// What bench-start and bench-runtime both measure against: a private store holding the busybox
// test image, and a strata daemon serving it.
import { join } from 'node:path';

import { importImage } from '../../src/store/import.js';
import { openStore, type Store } from '../../src/store/store.js';
import { busyboxImage, type TestImage } from '../../test/fixtures/images.js';
import { startDaemon } from '../../test/integration/harness.js';

export interface BenchDaemon {
  img: TestImage;
  store: Store;
  env: { dir: string; storeRoot: string; socket: string; logFile: string };
  stop(): Promise<unknown>;
}

export async function busyboxStoreWithDaemon(dir: string): Promise<BenchDaemon> {
  const img = await busyboxImage();
  const store = await openStore(join(dir, 'store'));
  await importImage(store, `oci:${img.ociLayout}:latest`, { name: 'busybox' });
  const env = {
    dir,
    storeRoot: store.root,
    socket: join(dir, 'run', 'strata.sock'),
    logFile: join(dir, 'daemon.log'),
  };
  const { stop } = await startDaemon(env);
  return { img, store, env, stop };
}
