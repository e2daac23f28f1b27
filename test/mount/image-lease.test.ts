// image-lease.ts: the record says what reads (kind, reader) in labels and which process holds it
// in its holder field (store/holder.ts); a taken id is refused unless the caller knows it can only
// be stale; release is idempotent. Holder liveness itself is tested in test/store/holder.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { takeImageLease } from '../../src/mount/image-lease.js';
import { AlreadyExistsError } from '../../src/errors.js';
import { currentHolder, holderAlive } from '../../src/store/holder.js';
import { createLease, listLeases, readLease } from '../../src/store/leases.js';
import { storeWithBusybox } from '../store/import-helpers.js';

test('the record says who holds it; release is idempotent and tolerates a removed lease', async () => {
  const { store, cleanup, digest } = await storeWithBusybox();
  try {
    const lease = await takeImageLease(store.root, digest, { kind: 'mount', reader: '/mnt/x' });
    const second = await takeImageLease(store.root, digest, { kind: 'mount', reader: '/mnt/y' });
    const me = currentHolder();
    assert.match(lease.id, new RegExp(`^mount-${process.pid}-${me.startTime}-[0-9]+$`));
    assert.is.not(second.id, lease.id, 'two leases of one process have two ids');
    await second.release();
    const record = await readLease(store.root, lease.id);
    assert.is(record.image, digest);
    assert.equal(record.labels, { kind: 'mount', reader: '/mnt/x' });
    assert.equal(record.holder, { ...me, name: 'strata mount' });
    assert.is(holderAlive(record.holder!), true);
    await Promise.all([lease.release(), lease.release()]);
    assert.equal(await listLeases(store.root), []);
    await lease.release();
  } finally {
    await cleanup();
  }
});

test('a taken id: refused, or replaced (and reported) when the caller says it can only be stale', async () => {
  const { store, cleanup, digest } = await storeWithBusybox();
  try {
    // As an older daemon wrote it: no holder labels.
    await createLease(store.root, 'web', digest, { container: 'web', bundle: '/b' });
    const req = {
      kind: 'container' as const,
      reader: 'web',
      id: 'web',
      labels: { container: 'web', bundle: '/b' },
    };
    const refused = await takeImageLease(store.root, digest, req).catch((e: unknown) => e);
    assert.instance(refused, AlreadyExistsError);
    const stale: string[] = [];
    const lease = await takeImageLease(store.root, digest, { ...req, onStale: (id) => stale.push(id) });
    assert.equal(stale, ['web']);
    const record = await readLease(store.root, 'web');
    assert.equal(record.labels, { ...lease.labels, container: 'web', bundle: '/b' });
    assert.is(record.labels?.kind, 'container');
    await lease.release();
    assert.equal(await listLeases(store.root), []);
  } finally {
    await cleanup();
  }
});

test.run();
