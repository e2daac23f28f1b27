// image-lease.ts: the record names its holder (kind, holder, pid, pid start time) on top of the
// lease format store/leases.ts always had; a taken id is refused unless the caller knows it can
// only be stale; release is idempotent; a reconciler can tell a live holder from a dead one and
// from a lease written before holders were recorded.
import { spawn } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { isLeaseHolderAlive, processStartTime, takeImageLease } from '../../src/mount/image-lease.js';
import { AlreadyExistsError } from '../../src/errors.js';
import { createLease, listLeases, readLease } from '../../src/store/leases.js';
import { storeWithBusybox } from '../store/import-helpers.js';

test('the record says who holds it; release is idempotent and tolerates a removed lease', async () => {
  const { store, cleanup, digest } = await storeWithBusybox();
  try {
    const lease = await takeImageLease(store.root, digest, { kind: 'mount', holder: '/mnt/x' });
    assert.match(lease.id, new RegExp(`^mount-${process.pid}-[0-9a-f]{8}$`));
    const record = await readLease(store.root, lease.id);
    assert.is(record.image, digest);
    assert.equal(record.labels, {
      kind: 'mount',
      holder: '/mnt/x',
      pid: String(process.pid),
      pidStart: processStartTime(process.pid),
    });
    assert.is(isLeaseHolderAlive(record), true);
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
    const legacy = await readLease(store.root, 'web');
    assert.is(isLeaseHolderAlive(legacy), undefined, 'an old record does not say');
    const req = {
      kind: 'container' as const,
      holder: 'web',
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

test('isLeaseHolderAlive: a dead holder, and a reused pid (same pid, other start time)', async () => {
  const child = spawn('sleep', ['10']);
  const pid = child.pid!;
  const labels = { pid: String(pid), pidStart: processStartTime(pid)! };
  assert.is(isLeaseHolderAlive({ labels }), true);
  assert.is(isLeaseHolderAlive({ labels: { ...labels, pidStart: '1' } }), false, 'another process');
  child.kill('SIGKILL');
  await new Promise((r) => child.on('close', r));
  assert.is(isLeaseHolderAlive({ labels }), false);
  assert.is(isLeaseHolderAlive({ labels: { pid: 'x' } }), undefined);
});

test.run();
