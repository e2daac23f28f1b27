import { createHash } from 'node:crypto';
import { readdir, readFile, stat, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataLossError } from '../../src/errors.js';
import { ObjectWriter, type SyncMode } from '../../src/store/writer.js';
import { tempStore } from './import-helpers.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

for (const mode of ['fsync', 'batch'] as SyncMode[]) {
  test(`${mode}: objects are named by sha256, read-only, written once`, async () => {
    const { store, cleanup } = await tempStore();
    try {
      const w = new ObjectWriter(store.root, store.ingestRoot, mode);
      const small = Buffer.from('hello\n');
      const big = Buffer.alloc(3 << 20, 7); // streamed path (> 1 MiB)
      const a = await w.write(Readable.from([small]), small.length);
      const b = await w.write(Readable.from([big.subarray(0, 1 << 20), big.subarray(1 << 20)]), big.length);
      const again = await w.write(Readable.from([small]), small.length);
      await w.commit();
      assert.is(a.digest, sha(small));
      assert.is(b.digest, sha(big));
      assert.is(again.digest, a.digest);
      assert.equal(await readFile(store.objectPath(a.digest)), small);
      assert.is((await stat(store.objectPath(b.digest))).mode & 0o777, 0o444);
      assert.is(w.stats.written, 2);
      assert.equal(await readdir(store.ingestRoot), [], 'no temp files left');
      const w2 = new ObjectWriter(store.root, store.ingestRoot, mode);
      await w2.write(Readable.from([small]), small.length);
      await w2.commit();
      assert.is(w2.stats.existing, 1);
      assert.is(w2.stats.written, 0);
    } finally {
      await cleanup();
    }
  });

  test(`${mode}: writeChunks (pieces in memory) stores what write() stores, once`, async () => {
    const { store, cleanup } = await tempStore();
    try {
      const w = new ObjectWriter(store.root, store.ingestRoot, mode);
      const data = Buffer.alloc(200_000, 3);
      data.write('distinct', 0);
      const pieces = [data.subarray(0, 5), data.subarray(5, 70_000), data.subarray(70_000)];
      const a = await w.writeChunks(pieces, data.length);
      const b = await w.writeChunks([data], data.length);
      const err = await w.writeChunks(pieces, data.length + 1).catch((e: unknown) => e);
      assert.instance(err, DataLossError);
      await w.commit();
      assert.is(a.digest, sha(data));
      assert.is(b.digest, a.digest);
      assert.is(w.stats.written, 1);
      assert.equal(await readFile(store.objectPath(a.digest)), data);
      assert.is((await stat(store.objectPath(a.digest))).mode & 0o777, 0o444);
      assert.equal(await readdir(store.ingestRoot), [], 'no temp files left');
      const w2 = new ObjectWriter(store.root, store.ingestRoot, mode);
      await w2.writeChunks(pieces, data.length);
      await w2.commit();
      assert.is(w2.stats.existing, 1);
    } finally {
      await cleanup();
    }
  });

  test(`${mode}: content shorter than its header size is refused and leaves nothing`, async () => {
    const { store, cleanup } = await tempStore();
    try {
      const w = new ObjectWriter(store.root, store.ingestRoot, mode);
      const err = await w.write(Readable.from([Buffer.from('abc')]), 4).catch((e: unknown) => e);
      assert.instance(err, DataLossError);
      const big = await w
        .write(Readable.from([Buffer.alloc(2 << 20)]), (2 << 20) + 1)
        .catch((e: unknown) => e);
      assert.instance(big, DataLossError);
      await w.abort();
      assert.equal(await readdir(store.ingestRoot), []);
      assert.equal(await readdir(join(store.root, 'objects')), []);
    } finally {
      await cleanup();
    }
  });
}

test('an existing object of the wrong size is replaced by the verified content', async () => {
  const { store, cleanup } = await tempStore();
  try {
    const data = Buffer.from('the real content');
    const w = new ObjectWriter(store.root, store.ingestRoot, 'batch');
    const { digest } = await w.write(Readable.from([data]), data.length);
    await w.commit();
    const path = store.objectPath(digest);
    await chmod(path, 0o644);
    await writeFile(path, 'trunc');
    const w2 = new ObjectWriter(store.root, store.ingestRoot, 'batch');
    await w2.write(Readable.from([data]), data.length);
    await w2.commit();
    assert.equal(await readFile(path), data);
  } finally {
    await cleanup();
  }
});

test.run();
