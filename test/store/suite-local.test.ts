// The role-interface conformance suite (suite.ts) against every implementation: the local disk
// store (Store as Provider + Manager, ObjectWriter as Ingester, in both sync modes) and the
// in-memory ObjectSink the layer tests use.
import { test } from 'uvu';
import { ObjectWriter, type SyncMode } from '../../src/store/writer.js';
import { tempStore } from './import-helpers.js';
import { MemorySink } from './layer/helpers.js';
import { ingesterSuite, objectSinkSuite } from './suite.js';

for (const mode of ['batch', 'fsync'] as SyncMode[]) {
  ingesterSuite(test, `local store, ${mode}`, async () => {
    const { store, cleanup } = await tempStore();
    return {
      ingester: () => new ObjectWriter(store.root, store.ingestRoot, mode),
      provider: store,
      tempDir: store.ingestRoot,
      visibleBeforeCommit: mode === 'fsync',
      cleanup,
    };
  });
}

objectSinkSuite(test, 'MemorySink', async () => {
  const sink = new MemorySink();
  return { sink, read: async (digest) => sink.objects.get(digest), cleanup: async () => {} };
});

test.run();
