// Proof that the store keeps images exactly: for each fixture image, imported from each format
// real tools wrote, the tree strata stores (tree index + objects) equals what `umoci unpack`
// produces for the same image, entry by entry (paths, types, modes, uid/gid, sizes, mtimes,
// symlink targets, device numbers, xattrs, link counts, content digests). Also conformance: every
// index, manifest and config strata reads from these images, and those it keeps in the store,
// validate against the official OCI image-spec schemas.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { importImage } from '../../src/store/import.js';
import type { ImageRecord } from '../../src/schema/generated/image-record.js';
import { loadTreeIndex } from '../../src/store/records.js';
import { openStore } from '../../src/store/store.js';
import { blobPath } from '../../src/store/layout.js';
import {
  busyboxImage,
  debianAppImage,
  debianImage,
  diffTrees,
  podmanSavedArchive,
  walkTree,
  walkTreeIndex,
  type TestImage,
  type Tree,
} from '../fixtures/images.js';
import { ociSchemaErrors, type OciDocument } from '../fixtures/oci-schemas.js';
import { run } from '../fixtures/run.js';

type Format = 'oci' | 'oci-archive' | 'docker-archive' | 'oci-zstd' | 'podman-archive';

async function specOf(img: TestImage, format: Format): Promise<string> {
  switch (format) {
    case 'oci':
      return `oci:${img.ociLayout}:${img.tag}`;
    case 'oci-archive':
      return `oci-archive:${img.ociArchive}`;
    case 'docker-archive':
      return `docker-archive:${img.dockerArchive}`;
    case 'oci-zstd':
      return `oci:${img.zstdOciLayout}:${img.tag}`;
    case 'podman-archive':
      return `docker-archive:${await podmanSavedArchive(img)}`;
  }
}

const ALL: Format[] = ['oci', 'oci-archive', 'docker-archive', 'oci-zstd', 'podman-archive'];
// Debian alone is the biggest import; debian-app covers every format over the same base layer.
const CASES: [string, () => Promise<TestImage>, Format[]][] = [
  ['busybox', busyboxImage, ALL],
  ['debian', debianImage, ['oci', 'docker-archive']],
  ['debian-app', debianAppImage, ALL],
];

const tempDirs: string[] = [];
async function freshStoreRoot(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-equiv-'));
  tempDirs.push(dir);
  return dir;
}

/** Import into a fresh store; return the stored tree and the record. */
async function importTree(
  img: TestImage,
  format: Format,
  name: string,
): Promise<{ tree: Tree; record: ImageRecord; root: string }> {
  const root = await freshStoreRoot();
  const store = await openStore(root);
  const result = await importImage(store, await specOf(img, format), {
    name: `strata-test/${name}:${format}`,
  });
  const index = loadTreeIndex(root, result.record);
  return { tree: await walkTreeIndex(index, root), record: result.record, root };
}

function assertConforms(doc: OciDocument, data: unknown, what: string): void {
  const errors = ociSchemaErrors(doc, data);
  assert.ok(
    errors.length === 0,
    `${what} does not conform to the OCI ${doc} schema:\n  ${errors.join('\n  ')}`,
  );
}

const references = new Map<string, Promise<Tree>>();
function reference(name: string, img: TestImage): Promise<Tree> {
  let t = references.get(name);
  if (!t) references.set(name, (t = walkTree(img.rootfs)));
  return t;
}

for (const [name, build, formats] of CASES) {
  for (const format of formats) {
    test(`${name} imported from ${format} equals umoci unpack`, async () => {
      const img = await build();
      const expected = await reference(name, img);
      const { tree, record, root } = await importTree(img, format, name);
      const diff = diffTrees(expected, tree);
      assert.ok(
        diff.length === 0,
        `${name} via ${format}: the stored tree differs from umoci unpack (${img.rootfs}):\n  ${diff.join('\n  ')}`,
      );
      // What strata keeps in the store is still an OCI manifest and config.
      const manifest = JSON.parse(readFileSync(blobPath(root, record.manifestDigest), 'utf8')) as unknown;
      if (record.manifestMediaType === 'application/vnd.oci.image.manifest.v1+json') {
        assertConforms('manifest', manifest, `stored manifest of ${name} via ${format}`);
      }
      assertConforms(
        'config',
        JSON.parse(readFileSync(blobPath(root, record.configDigest), 'utf8')),
        `stored config of ${name} via ${format}`,
      );
      await rm(root, { recursive: true, force: true });
    });
  }
}

function checkLayout(layout: string, what: string): number {
  let checked = 0;
  const blob = (digest: string) =>
    JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as unknown;
  assertConforms(
    'layout',
    JSON.parse(readFileSync(join(layout, 'oci-layout'), 'utf8')),
    `${what}/oci-layout`,
  );
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  assertConforms('index', index, `${what}/index.json`);
  for (const d of index.manifests) {
    const manifest = blob(d.digest) as { config: { digest: string } };
    assertConforms('manifest', manifest, `${what} manifest ${d.digest}`);
    assertConforms('config', blob(manifest.config.digest), `${what} config ${manifest.config.digest}`);
    checked += 3;
  }
  return checked + 2;
}

test('every index, manifest and config in the fixture images conforms to the OCI schemas', async () => {
  let checked = 0;
  for (const [name, build] of CASES) {
    const img = await build();
    checked += checkLayout(img.ociLayout, `${name} oci`);
    checked += checkLayout(img.zstdOciLayout!, `${name} oci-zstd`);
    const dir = await freshStoreRoot();
    await run('tar', ['-C', dir, '-xf', img.ociArchive]);
    checked += checkLayout(dir, `${name} oci-archive`);
    await rm(dir, { recursive: true, force: true });
    // docker-archive: manifest.json is docker's own format; its image config is OCI-compatible.
    const [entry] = JSON.parse((await run('tar', ['-xOf', img.dockerArchive, 'manifest.json'])).stdout) as {
      Config: string;
    }[];
    const config = JSON.parse(
      (await run('tar', ['-xOf', img.dockerArchive, entry.Config])).stdout,
    ) as unknown;
    assertConforms('config', config, `${name} docker-archive config`);
    checked += 1;
  }
  assert.ok(checked >= 30, `checked ${checked} documents`);
  // The validator itself must reject what is wrong.
  assert.ok(ociSchemaErrors('manifest', { schemaVersion: 2, config: { digest: 'nope' } }).length > 0);
  assert.ok(ociSchemaErrors('index', { schemaVersion: 1 }).length > 0);
});

test('no temp dir is left behind', async () => {
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
  const left = readdirSync(tmpdir()).filter((n) => n.startsWith('strata-equiv-'));
  assert.equal(
    left.filter((n) => tempDirs.includes(join(tmpdir(), n))),
    [],
  );
  assert.ok(tempDirs.every((d) => !existsSync(d)));
});

test.run();
