import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../../src/errors.js';
import { fsck } from '../../src/store/fsck.js';
import { gc } from '../../src/store/gc.js';
import { bootId, currentHolder } from '../../src/store/holder.js';
import { removeImage } from '../../src/store/images.js';
import {
  createLease,
  isStale,
  listLeases,
  readLease,
  releaseLease,
  releaseStaleLeases,
} from '../../src/store/leases.js';
import { listImages } from '../../src/store/records.js';
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

/** A holder that no longer exists: this pid, but another start time (the pid was reused). */
const gone = () => ({ ...currentHolder(), startTime: '0' });

test('a lease names its holder (this process by default) and is stale once the holder is gone', async () => {
  const { store, cleanup, digest } = await storeWithBusybox();
  try {
    const root = store.root;
    const live = await createLease(root, 'live', digest);
    assert.equal(live.holder, { pid: process.pid, startTime: currentHolder().startTime, bootId: bootId() });
    assert.not.ok(isStale(live));
    assert.equal((await fsck(store)).findings, [], 'a live lease is no finding');
    const stale = await createLease(root, 'stale', digest, { container: 'c1' }, gone());
    assert.ok(isStale(stale));
    const legacy = { id: 'legacy', image: digest, createdAt: new Date().toISOString() };
    assert.not.ok(isStale(legacy), 'a lease without a holder cannot be judged: kept');

    const other = await createLease(root, 'stale-2', digest, { container: 'c2' }, gone());
    const released = await releaseStaleLeases(root, (l) => l.labels?.container === 'c1');
    assert.equal(released, [stale], 'only what the filter selects');
    assert.equal(await releaseStaleLeases(root), [other]);
    assert.equal(await listLeases(root), [live], 'a live lease is never released as stale');
    await releaseLease(root, 'live');
  } finally {
    await cleanup();
  }
});

test('image rm and gc do not count a stale lease: the image and its objects go', async () => {
  const { store, cleanup, digest } = await storeWithBusybox('bb');
  try {
    const root = store.root;
    await createLease(root, 'crashed', digest, { container: 'c' }, gone());
    const r = await removeImage(root, 'bb');
    assert.is(r.deleted, digest, 'the record goes with its last name');
    assert.equal(await listImages(root), []);
    const dry = await gc(store, { dryRun: true });
    assert.equal(dry.staleLeases, ['crashed']);
    assert.is((await listLeases(root)).length, 1, 'a dry run releases nothing');
    const real = await gc(store);
    assert.equal(real.staleLeases, ['crashed']);
    assert.ok(real.removed.objects > 0, 'the objects the lease pinned are swept');
    assert.equal(await listLeases(root), []);
    assert.equal((await fsck(store)).findings, []);
  } finally {
    await cleanup();
  }
});

test.run();
