import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataLossError, FailedPreconditionError } from '../../src/errors.js';
import { importImage } from '../../src/store/import.js';
import { blobPath } from '../../src/store/layout.js';
import { loadTreeIndex, resolveImage } from '../../src/store/records.js';
import { openSource } from '../../src/store/source/index.js';
import { applyLayer } from '../../src/store/layer/apply-layer.js';
import { busyboxImage } from '../fixtures/images.js';
import { tempStore } from './import-helpers.js';

test('import: record, index, blobs and names; busybox is servable from the index', async () => {
  const img = await busyboxImage();
  const { store, cleanup } = await tempStore();
  try {
    const phases = new Set<string>();
    const r = await importImage(store, `oci:${img.ociLayout}:latest`, {
      name: 'bb',
      applyLayer,
      onProgress: (p) => phases.add(p.phase),
    });
    assert.equal(r.names, ['bb:latest']);
    assert.ok(phases.has('layer') && phases.has('commit'));
    const info = await resolveImage(store.root, 'bb');
    assert.is(info.manifestDigest, r.record.manifestDigest);
    assert.equal(info.names, ['bb:latest']);
    assert.ok(info.fileCount > 0 && info.objectCount > 0);
    const index = loadTreeIndex(store.root, info, { verify: true });
    const busybox = index.resolve('bin/busybox');
    assert.ok(busybox > 0, 'bin/busybox is in the tree');
    const content = index.content(busybox);
    assert.is(content.kind, 'object');
    if (content.kind === 'object') {
      assert.equal(await readFile(store.objectPath(content.digest)), await readFile('/bin/busybox'));
    }
    assert.ok((await readFile(blobPath(store.root, info.configDigest))).length > 0);
    assert.equal(await readdir(store.ingestRoot), [], 'ingest is empty after an import');

    const again = await importImage(store, `oci:${img.ociLayout}:latest`, { name: 'other:1', applyLayer });
    assert.ok(again.existing, 'second import takes the shortcut');
    assert.equal((await resolveImage(store.root, 'other:1')).names, ['bb:latest', 'other:1']);
  } finally {
    await cleanup();
  }
});

test('a failing layer leaves no name, no record and no temp file; gc takes its objects', async () => {
  const img = await busyboxImage();
  const { store, cleanup } = await tempStore();
  try {
    // The real source, with its layer stream broken after 200 KiB (as a corrupt gzip would be).
    const broken = async (spec: string) => {
      const src = await openSource(spec);
      for (const layer of src.layers) {
        const open = layer.open.bind(layer);
        layer.open = async () => {
          let seen = 0;
          const cut = new Transform({
            transform(chunk: Buffer, _e, done) {
              seen += chunk.length;
              if (seen > 200 << 10) done(new DataLossError(`layer ${layer.digest} is corrupt`));
              else done(null, chunk);
            },
          });
          return (await open()).pipe(cut);
        };
      }
      return src;
    };
    const err = await importImage(store, `oci:${img.ociLayout}:latest`, {
      name: 'bb',
      applyLayer,
      openSource: broken,
    }).catch((e: unknown) => e);
    assert.instance(err, DataLossError);
    for (const dir of ['refs', 'images', 'indexes/sha256', 'blobs/sha256', 'ingest']) {
      assert.equal(await readdir(join(store.root, dir)), [], `${dir} is empty`);
    }
  } finally {
    await cleanup();
  }
});

test('an image without a name needs --name', async () => {
  const img = await busyboxImage();
  const { store, cleanup } = await tempStore();
  try {
    const noNames = async (spec: string) => Object.assign(await openSource(spec), { names: [] });
    const err = await importImage(store, `oci:${img.ociLayout}:latest`, {
      openSource: noNames,
      applyLayer,
    }).catch((e: unknown) => e);
    assert.instance(err, FailedPreconditionError);
    assert.match((err as Error).message, /--name/);
  } finally {
    await cleanup();
  }
});

test.run();
