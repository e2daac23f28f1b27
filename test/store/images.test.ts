import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InvalidArgumentError, NotFoundError } from '../../src/errors.js';
import { removeImage, tagImage } from '../../src/store/images.js';
import { createLease, releaseLease } from '../../src/store/leases.js';
import { listImages, resolveImage } from '../../src/store/records.js';
import { storeWithBusybox } from './import-helpers.js';

test('resolve by name, name:tag, full and short digest; tag; rm by name and by digest', async () => {
  const { store, cleanup, digest } = await storeWithBusybox('bb');
  try {
    const root = store.root;
    const hex = digest.slice(7);
    for (const ref of ['bb', 'bb:latest', digest, hex, hex.slice(0, 8), `sha256:${hex.slice(0, 6)}`]) {
      assert.is((await resolveImage(root, ref)).manifestDigest, digest, ref);
    }
    assert.instance(await resolveImage(root, 'nope').catch((e: unknown) => e), NotFoundError);
    assert.instance(await resolveImage(root, 'bb:1').catch((e: unknown) => e), NotFoundError);
    assert.instance(await resolveImage(root, 'Bad Name').catch((e: unknown) => e), InvalidArgumentError);

    await tagImage(root, hex.slice(0, 8), 'copy:v1');
    assert.equal((await resolveImage(root, 'copy:v1')).names, ['bb:latest', 'copy:v1']);

    assert.equal(await removeImage(root, 'bb'), { ref: 'bb', untagged: ['bb:latest'] });
    assert.equal(
      (await listImages(root)).map((i) => i.names),
      [['copy:v1']],
    );
    const last = await removeImage(root, 'copy:v1');
    assert.is(last.deleted, digest);
    assert.equal(await listImages(root), []);
  } finally {
    await cleanup();
  }
});

test('rm by digest removes every name; a leased image stays until its lease goes', async () => {
  const { store, cleanup, digest } = await storeWithBusybox('bb');
  try {
    const root = store.root;
    await tagImage(root, 'bb', 'bb:2');
    await createLease(root, 'ctr1', digest);
    const r = await removeImage(root, digest);
    assert.equal(r.untagged.sort(), ['bb:2', 'bb:latest']);
    assert.is(r.deleted, undefined);
    assert.equal(
      (await listImages(root)).map((i) => [i.manifestDigest, i.names]),
      [[digest, []]],
    );
    await releaseLease(root, 'ctr1');
  } finally {
    await cleanup();
  }
});

test.run();
