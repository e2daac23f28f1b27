import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fsck, type FsckKind } from '../../src/store/fsck.js';
import { importImage } from '../../src/store/import.js';
import { blobPath, imageRecordPath, leasePath, treeIndexPath } from '../../src/store/layout.js';
import { currentHolder } from '../../src/store/holder.js';
import { createLease } from '../../src/store/leases.js';
import { loadTreeIndex, readRecord } from '../../src/store/records.js';
import { setRef } from '../../src/store/refs.js';
import type { Store } from '../../src/store/store.js';
import { busyboxImage } from '../fixtures/images.js';
import { storeWithBusybox } from './import-helpers.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

async function anObject(store: Store, digest: string): Promise<string> {
  const index = loadTreeIndex(store.root, await readRecord(store.root, digest));
  return store.objectPath(index.objectDigest(0));
}

async function overwrite(path: string, data: string | Buffer): Promise<void> {
  await chmod(path, 0o644);
  await writeFile(path, data);
  await chmod(path, 0o444);
}

type Damage = (store: Store, digest: string) => Promise<void>;

const cases: [FsckKind, Damage, FsckKind[]][] = [
  // [kind, damage, errors that remain after --repair]
  ['object-digest-mismatch', async (s, d) => overwrite(await anObject(s, d), 'rot'), ['object-missing']],
  ['object-name-invalid', async (s) => writeFile(join(s.root, 'objects', 'zz'), 'x'), []],
  ['object-mode', async (s, d) => chmod(await anObject(s, d), 0o644), []],
  ['object-missing', async (s, d) => rm(await anObject(s, d)), ['object-missing']],
  [
    'blob-digest-mismatch',
    async (s, d) => overwrite(blobPath(s.root, (await readRecord(s.root, d)).configDigest), '{}'),
    ['blob-missing'],
  ],
  [
    'blob-missing',
    async (s, d) => rm(blobPath(s.root, (await readRecord(s.root, d)).configDigest)),
    ['blob-missing'],
  ],
  ['index-corrupt', async (s) => writeFile(treeIndexPath(s.root, sha('junk')), 'junk'), []],
  [
    'index-digest-mismatch',
    async (s, d) => overwrite(treeIndexPath(s.root, (await readRecord(s.root, d)).indexDigest), 'x'),
    ['index-missing'],
  ],
  [
    'index-missing',
    async (s, d) => rm(treeIndexPath(s.root, (await readRecord(s.root, d)).indexDigest)),
    ['index-missing'],
  ],
  ['record-invalid', async (s, d) => writeFile(imageRecordPath(s.root, d), '{"schemaVersion":1}'), []],
  ['ref-invalid', async (s) => writeFile(join(s.root, 'refs', 'junk%3Alatest'), 'not a digest'), []],
  ['ref-dangling', async (s) => setRef(s.root, 'gone:latest', 'sha256:' + sha('gone')), []],
  ['lease-invalid', async (s) => writeFile(leasePath(s.root, 'bad'), '{'), []],
  [
    'lease-dangling',
    async (s) => {
      const lease = { id: 'old', image: 'sha256:' + sha('gone'), createdAt: new Date().toISOString() };
      await writeFile(leasePath(s.root, 'old'), JSON.stringify(lease));
    },
    [],
  ],
  [
    'stale-lease',
    // Held by this pid with another start time: the process that took it is gone, its pid reused.
    async (s, d) => {
      await createLease(s.root, 'crashed', d, { container: 'c' }, { ...currentHolder(), startTime: '0' });
    },
    [],
  ],
  ['stale-ingest', async (s) => mkdir(join(s.root, 'ingest', 'import-dead')), []],
];

for (const [kind, damage, remaining] of cases) {
  test(`fsck finds and repairs ${kind}`, async () => {
    const { store, cleanup, digest } = await storeWithBusybox();
    try {
      assert.equal((await fsck(store)).findings, [], 'clean before the damage');
      await damage(store, digest);
      const found = await fsck(store);
      const f = found.findings.find((x) => x.kind === kind);
      assert.ok(f, `${kind} reported: ${JSON.stringify(found.findings)}`);
      assert.ok(f.path.startsWith(store.root));
      assert.is(f.repaired, false);
      const repaired = await fsck(store, { repair: true });
      assert.ok(repaired.findings.find((x) => x.kind === kind));
      const after = await fsck(store);
      assert.equal([...new Set(after.findings.map((x) => x.kind))], remaining);
      assert.is(after.errors, after.findings.filter((x) => x.severity === 'error').length);
    } finally {
      await cleanup();
    }
  });
}

test('a corrupt object is not trusted forever: fsck --repair, then the same import, gives a clean store', async () => {
  const { store, cleanup, digest } = await storeWithBusybox('bb');
  try {
    const path = await anObject(store, digest);
    await overwrite(path, 'rot');
    const again = await importImage(store, `oci:${(await busyboxImage()).ociLayout}:latest`, {
      name: 'bb',
    });
    assert.ok(again.existing, "the shortcut checks presence; re-hashing is fsck's job");
    assert.is((await fsck(store, { repair: true })).errors, 1, 'object-missing remains after repair');
    const healed = await importImage(store, `oci:${(await busyboxImage()).ociLayout}:latest`, {
      name: 'bb',
    });
    assert.not.ok(healed.existing);
    assert.is(healed.objectsWritten, 1);
    assert.equal((await fsck(store)).findings, []);
    assert.equal(await readdir(store.ingestRoot), []);
    await createLease(store.root, 'x', digest);
  } finally {
    await cleanup();
  }
});

test.run();
