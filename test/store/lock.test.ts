import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UnavailableError } from '../../src/errors.js';
import { lockStore } from '../../src/store/lock.js';
import { tempStore } from './import-helpers.js';

test('shared locks coexist; exclusive waits for them, says so, and can time out', async () => {
  const { store, cleanup } = await tempStore();
  try {
    const a = await lockStore(store.root, 'shared');
    const b = await lockStore(store.root, 'shared', { timeoutMs: 0 });
    let waited = 0;
    const err = await lockStore(store.root, 'exclusive', {
      timeoutMs: 150,
      pollMs: 20,
      onWait: () => waited++,
    }).catch((e: unknown) => e);
    assert.instance(err, UnavailableError);
    assert.is(waited, 1);
    const pending = lockStore(store.root, 'exclusive', { pollMs: 20 });
    await a.release();
    await b.release();
    const ex = await pending;
    assert.instance(
      await lockStore(store.root, 'shared', { timeoutMs: 50, pollMs: 10 }).catch((e: unknown) => e),
      UnavailableError,
    );
    await ex.release();
    await (await lockStore(store.root, 'shared', { timeoutMs: 0 })).release();
  } finally {
    await cleanup();
  }
});

test.run();
