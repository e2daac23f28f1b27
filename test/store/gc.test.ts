import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gc } from '../../src/store/gc.js';
import { removeImage } from '../../src/store/images.js';
import { createLease, releaseLease } from '../../src/store/leases.js';
import { removeRef } from '../../src/store/refs.js';
import { fsck } from '../../src/store/fsck.js';
import { storeWithBusybox } from './import-helpers.js';

async function count(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true }))
    n += e.isDirectory() ? await count(join(dir, e.name)) : 1;
  return n;
}

test('gc keeps what names and leases hold, sweeps the rest; dry run changes nothing', async () => {
  const { store, cleanup, digest } = await storeWithBusybox('bb');
  try {
    const root = store.root;
    const objects = await count(join(root, 'objects'));
    await mkdir(join(root, 'ingest', 'import-dead'));
    await writeFile(join(root, 'ingest', 'import-dead', 'obj-1'), 'partial');
    await mkdir(join(root, 'objects', 'ff'), { recursive: true });
    await writeFile(join(root, 'objects', 'ff', 'f'.repeat(62)), 'orphan');

    const kept = await gc(store);
    assert.equal(kept.removed, { objects: 1, blobs: 0, indexes: 0, images: 0, ingest: 1 });
    assert.is(kept.kept.images, 1);
    assert.is(await count(join(root, 'objects')), objects);

    await createLease(root, 'ctr', digest);
    await removeRef(root, 'bb:latest');
    assert.is((await gc(store)).removed.objects, 0, 'the lease holds the image');
    await releaseLease(root, 'ctr');

    const dry = await gc(store, { dryRun: true });
    assert.equal(dry.removed, { objects, blobs: 2, indexes: 1, images: 1, ingest: 0 });
    assert.ok(dry.bytes.objects > 1 << 20);
    assert.is(await count(join(root, 'objects')), objects, 'dry run removed nothing');
    const real = await gc(store);
    assert.equal(real.removed, dry.removed);
    assert.is(await count(join(root, 'objects')), 0);
    assert.is((await fsck(store)).errors, 0);
  } finally {
    await cleanup();
  }
});

test('rm then gc leaves an empty store', async () => {
  const { store, cleanup } = await storeWithBusybox('bb');
  try {
    await removeImage(store.root, 'bb');
    await gc(store);
    for (const d of ['objects', 'blobs', 'indexes', 'images', 'refs'])
      assert.is(await count(join(store.root, d)), 0, d);
  } finally {
    await cleanup();
  }
});

test.run();
