// Every store mutation runs under the store lock: gc (exclusive) sweeps ingest/, where tag, rm,
// an import's commit and leases write their temp files, so none of them may run during a sweep.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { fsck } from '../../src/store/fsck.js';
import { gc } from '../../src/store/gc.js';
import { removeImage, tagImage } from '../../src/store/images.js';
import { createLease, releaseLease } from '../../src/store/leases.js';
import { listRefs } from '../../src/store/refs.js';
import { storeWithBusybox } from './import-helpers.js';

const ROUNDS = 40;

test(`tag, image rm and leases against gc, ${ROUNDS} times: no error, no name lost`, async () => {
  const { store, cleanup, digest } = await storeWithBusybox('bb');
  try {
    const root = store.root;
    // How long one gc takes here: each round starts the other mutations somewhere inside one.
    let t0 = performance.now();
    await gc(store);
    const gcMs = performance.now() - t0;
    const errors: string[] = [];
    const later = <T>(fn: () => Promise<T>): Promise<T | undefined> =>
      new Promise((resolve) => setTimeout(resolve, Math.random() * gcMs)).then(fn).catch((err: unknown) => {
        errors.push((err as Error).message);
        return undefined;
      });
    t0 = performance.now();
    for (let i = 0; i < ROUNDS; i++) {
      await Promise.all([
        gc(store).catch((err: unknown) => errors.push(`gc: ${(err as Error).message}`)),
        later(() => tagImage(root, 'bb', `kept:${i}`)),
        later(async () => {
          await tagImage(root, 'bb', `dropped:${i}`);
          await removeImage(root, `dropped:${i}`);
        }),
        later(async () => {
          await createLease(root, `lease-${i}`, digest);
          await releaseLease(root, `lease-${i}`);
        }),
      ]);
    }
    assert.equal(errors, []);
    const names = (await listRefs(root)).filter((r) => r.digest === digest).map((r) => r.name);
    assert.is(names.length, ROUNDS + 1, 'bb:latest and every kept:N');
    for (let i = 0; i < ROUNDS; i++) assert.ok(names.includes(`kept:${i}`), `kept:${i}`);
    assert.equal((await fsck(store)).findings, []);
  } finally {
    await cleanup();
  }
});

test.run();
