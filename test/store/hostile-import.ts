// Shared by the hostile-input tests (issue 7): import an oci-archive that the test built into a
// fresh store with the real source and applier, and check that a failure left nothing visible:
// no record, no name, an empty ingest dir, and a store that fsck finds clean.
import { createHash } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { StrataError } from '../../src/errors.js';
import { fsck } from '../../src/store/fsck.js';
import { importImage, type ImportOptions, type ImportResult } from '../../src/store/import.js';
import type { Store } from '../../src/store/store.js';
import { ociArchive } from '../fixtures/corpus/make-corpus.js';
import { tempStore } from './import-helpers.js';

export const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');
export const TAR = 'application/vnd.oci.image.layer.v1.tar';
export const GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const ZST = 'application/vnd.oci.image.layer.v1.tar+zstd';

export interface HostileLayer {
  blob: Buffer;
  mediaType: string;
  diffId: string;
}

/** A plain tar layer. */
export const plain = (tar: Buffer): HostileLayer => ({ blob: tar, mediaType: TAR, diffId: sha(tar) });

/** Write the layers as an oci-archive in `dir`; answers its import spec. */
export async function writeArchive(dir: string, layers: HostileLayer[]): Promise<string> {
  const path = join(dir, `hostile-${Math.random().toString(36).slice(2)}.tar`);
  await writeFile(path, await ociArchive(layers));
  return `oci-archive:${path}`;
}

/** Import and expect a StrataError; then check that nothing of the import is visible. */
export async function importFails(
  store: Store,
  spec: string,
  opts: ImportOptions = {},
): Promise<StrataError> {
  let result: ImportResult | undefined;
  try {
    result = await importImage(store, spec, { name: 'hostile', ...opts });
  } catch (err) {
    assert.instance(err, StrataError, String((err as Error).stack));
    await assertNothingVisible(store);
    return err as StrataError;
  }
  throw new Error(`import succeeded: ${JSON.stringify(result?.record.fileCount)} files`);
}

export async function assertNothingVisible(store: Store): Promise<void> {
  assert.equal(await readdir(store.ingestRoot), [], 'ingest is empty');
  const { findings, errors, checked } = await fsck(store);
  assert.is(errors, 0, JSON.stringify(findings));
  assert.equal(findings, [], 'fsck finds nothing');
  assert.is(checked.images, 0, 'no image record');
  assert.is(checked.refs, 0, 'no name');
}

/** A fresh store plus a temp dir for archives, removed by cleanup. */
export async function hostileStore(): Promise<{ store: Store; dir: string; cleanup: () => Promise<void> }> {
  const t = await tempStore();
  return { ...t, dir: join(t.store.root, '..') };
}
