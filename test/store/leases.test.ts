import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../../src/errors.js';
import { createLease, listLeases, readLease, releaseLease } from '../../src/store/leases.js';
import { storeWithBusybox } from './import-helpers.js';

test('leases: create, list, read, release; refused for missing images, bad ids, duplicates', async () => {
  const { store, cleanup, digest } = await storeWithBusybox();
  try {
    const root = store.root;
    const lease = await createLease(root, 'ctr-1', digest, { container: 'web' });
    assert.is(lease.image, digest);
    assert.equal(await readLease(root, 'ctr-1'), lease);
    assert.equal(await listLeases(root), [lease]);
    assert.instance(await createLease(root, 'ctr-1', digest).catch((e: unknown) => e), AlreadyExistsError);
    assert.instance(await createLease(root, '../x', digest).catch((e: unknown) => e), InvalidArgumentError);
    const missing = 'sha256:' + '0'.repeat(64);
    assert.instance(await createLease(root, 'ctr-2', missing).catch((e: unknown) => e), NotFoundError);
    await releaseLease(root, 'ctr-1');
    assert.equal(await listLeases(root), []);
    assert.instance(await releaseLease(root, 'ctr-1').catch((e: unknown) => e), NotFoundError);
  } finally {
    await cleanup();
  }
});

test.run();
