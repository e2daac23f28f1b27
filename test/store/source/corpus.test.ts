// One case per file of the bad-input corpus (test/fixtures/corpus, made by make-corpus.ts): each
// must fail with its specific error kind and a message naming the blob or entry.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataLossError, InvalidArgumentError, NotFoundError, StrataError } from '../../../src/errors.js';
import { applyLayer } from '../../../src/store/layer/apply-layer.js';
import { openSource } from '../../../src/store/source/index.js';
import type { ImageSource } from '../../../src/store/source/types.js';
import { newDir } from '../../../src/store/tree-index-encode.js';
import { MemorySink } from '../layer/helpers.js';

const corpus = (name: string) => fileURLToPath(new URL(`../../fixtures/corpus/${name}.tar`, import.meta.url));

/** Open and apply every layer; returns the error and the source (when it opened). */
async function importFails(name: string): Promise<{ err: StrataError; src?: ImageSource }> {
  let src: ImageSource | undefined;
  try {
    src = await openSource(corpus(name));
    const root = newDir();
    for (const layer of src.layers) {
      await applyLayer(root, await layer.open(), new MemorySink(), { layer: layer.digest });
    }
  } catch (err) {
    assert.instance(err, StrataError, `${name}: ${String(err)}`);
    return { err: err as StrataError, src };
  } finally {
    await src?.close();
  }
  throw new Error(`${name}: import succeeded`);
}

function namesLayer(err: Error, src: ImageSource | undefined): void {
  assert.ok(src, 'the archive itself opened');
  assert.match(err.message, src!.layers[0].digest);
}

const layerData: [string, typeof InvalidArgumentError | typeof DataLossError][] = [
  ['truncated-gzip', InvalidArgumentError],
  ['corrupt-gzip', InvalidArgumentError],
  ['corrupt-zstd', InvalidArgumentError],
  ['wrong-layer-digest', DataLossError],
  ['wrong-diff-id', DataLossError],
  ['truncated-tar', InvalidArgumentError],
  ['garbage-layer', InvalidArgumentError],
];
for (const [name, kind] of layerData) {
  test(`${name}: ${kind.name} naming the layer`, async () => {
    const { err, src } = await importFails(name);
    assert.instance(err, kind, err.message);
    namesLayer(err, src);
  });
}

test('wrong-diff-id: the message names the expected diff_id', async () => {
  const { err, src } = await importFails('wrong-diff-id');
  assert.match(err.message, src!.layers[0].diffId);
});

const entries: [string, string][] = [
  ['dotdot-entry', '../../etc/cron.d/evil'],
  ['symlink-escape', 'a/passwd'],
  ['hardlink-missing', 'no/such/file'],
  ['hardlink-outside', '../../../etc/shadow'],
  ['absurd-size', 'huge'],
];
for (const [name, entry] of entries) {
  test(`${name}: InvalidArgumentError naming the layer and ${entry}`, async () => {
    const { err, src } = await importFails(name);
    assert.instance(err, InvalidArgumentError, err.message);
    namesLayer(err, src);
    assert.match(err.message, entry);
  });
}

test('missing-blob: NotFoundError naming the digest and the archive', async () => {
  const { err, src } = await importFails('missing-blob');
  assert.is(src, undefined, 'refused when opening, before any layer');
  assert.instance(err, NotFoundError);
  assert.match(err.message, /blob sha256:[0-9a-f]{64} not found/);
  assert.match(err.message, corpus('missing-blob'));
});

test('unsupported-media-type: InvalidArgumentError naming the blob and type', async () => {
  const { err } = await importFails('unsupported-media-type');
  assert.instance(err, InvalidArgumentError);
  assert.match(err.message, /layer sha256:[0-9a-f]{64}: foreign/);
  assert.match(err.message, 'nondistributable');
});

test('garbage: a file that is no archive is refused naming it', async () => {
  const { err } = await importFails('garbage');
  assert.instance(err, InvalidArgumentError);
  assert.match(err.message, corpus('garbage'));
});

test.run();
