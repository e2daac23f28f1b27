// Importing from the stores of real containerd and real podman (private roots) gives exactly the
// image an archive import gives: the same tree index (byte for byte), the same config (so podman's
// image id is strata's config digest), no object written twice; tampered content is refused.
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { DataLossError, NotFoundError } from '../../src/errors.js';
import { importImage } from '../../src/store/import.js';
import {
  containerdImageOf,
  containersStorageImageOfBundle,
  importFromContainerd,
  importFromContainersStorage,
} from '../../src/store/import-foreign.js';
import { listImages, loadTreeIndex } from '../../src/store/records.js';
import { openStore, type Store } from '../../src/store/store.js';
import { busyboxImage, debianAppImage, diffTrees, walkTreeIndex } from '../fixtures/images.js';
import { PrivatePodman } from '../fixtures/private-podman.js';
import { CONTAINERD_IMAGES, Containerd } from './containerd-harness.js';
import { strataSync } from './harness.js';

let dir: string;
let store: Store;
let ctd: Containerd;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'strata-foreign-'));
  store = await openStore(join(dir, 'store'));
  ctd = await Containerd.start({ cri: false });
  const busybox = await busyboxImage();
  await ctd.importArchive(busybox.ociArchive, CONTAINERD_IMAGES.busybox, 'default', { unpack: false });
});

test.after(async () => {
  try {
    await ctd?.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('containerd:NAME gives the image an oci-archive import gives, and the second time nothing new', async () => {
  const busybox = await busyboxImage();
  const fromArchive = await importImage(store, `oci-archive:${busybox.ociArchive}`, { name: 'ref/busybox' });
  const first = await importFromContainerd(store, CONTAINERD_IMAGES.busybox, {
    containerd: { root: ctd.root, address: ctd.address },
  });
  assert.is(first.record.manifestDigest, fromArchive.record.manifestDigest, 'containerd keeps the manifest');
  assert.is(first.record.indexDigest, fromArchive.record.indexDigest, 'the same tree');
  assert.equal(first.names, [CONTAINERD_IMAGES.busybox]);
  const again = await importFromContainerd(store, CONTAINERD_IMAGES.busybox, {
    containerd: { root: ctd.root, address: ctd.address },
  });
  assert.ok(again.existing, 'already complete: only the record is checked');
});

test("containerdImageOf: the CRI annotation in the bundle, else containerd's container record", async () => {
  const bundle = join(dir, 'bundle-cri');
  mkdirSync(bundle);
  writeFileSync(
    join(bundle, 'config.json'),
    JSON.stringify({ annotations: { 'io.kubernetes.cri.image-name': 'docker.io/library/x:1' } }),
  );
  assert.is(
    await containerdImageOf({ id: 'whatever', bundle, address: '/nonexistent.sock' }),
    'docker.io/library/x:1',
  );
  await ctd.ctrOk(['containers', 'create', CONTAINERD_IMAGES.busybox, 'rec1']);
  try {
    const image = await containerdImageOf({ id: 'rec1', bundle: join(dir, 'none'), address: ctd.address });
    assert.is(image, CONTAINERD_IMAGES.busybox);
  } finally {
    await ctd.ctrOk(['containers', 'rm', 'rec1']);
  }
  try {
    await containerdImageOf({ id: 'rec-missing', address: ctd.address });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, NotFoundError);
  }
});

test('strata image import containerd:NAME --containerd-root --address (the CLI)', () => {
  const other = join(dir, 'cli-store');
  const r = strataSync([
    '--root',
    other,
    'image',
    'import',
    `containerd:${CONTAINERD_IMAGES.busybox}`,
    '--containerd-root',
    ctd.root,
    '--address',
    ctd.address,
    '--json',
  ]);
  assert.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { names: string[]; record: { source: string } };
  assert.equal(out.names, [CONTAINERD_IMAGES.busybox]);
  assert.match(out.record.source, /^containerd:/);
  const missing = strataSync([
    '--root',
    other,
    'image',
    'import',
    'containerd:nope/none:1',
    '--address',
    ctd.address,
  ]);
  assert.is.not(missing.status, 0);
  assert.match(missing.stderr, /has no image "nope\/none:1" in namespace default/);
});

test("a blob changed in containerd's content store is refused (DataLossError), nothing named", async () => {
  const other = await openStore(join(dir, 'tamper-store'));
  // The config blob: small and read whole. Make a copy of the content dir's blob, changed.
  const blobs = join(ctd.root, 'io.containerd.content.v1.content', 'blobs', 'sha256');
  const busybox = await busyboxImage();
  const index = JSON.parse(readFileSync(join(busybox.ociLayout, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  const manifest = JSON.parse(readFileSync(join(blobs, index.manifests[0].digest.slice(7)), 'utf8')) as {
    config: { digest: string };
  };
  const configPath = join(blobs, manifest.config.digest.slice(7));
  const original = readFileSync(configPath);
  writeFileSync(configPath, Buffer.concat([original.subarray(0, original.length - 2), Buffer.from(' }')]));
  try {
    await importFromContainerd(other, CONTAINERD_IMAGES.busybox, {
      containerd: { root: ctd.root, address: ctd.address },
    });
    assert.unreachable('imported a changed config');
  } catch (err) {
    assert.instance(err, DataLossError);
    assert.match((err as Error).message, /does not match its descriptor/);
  } finally {
    writeFileSync(configPath, original);
  }
  assert.equal(await listImages(other.root), [], 'nothing named');
});

test("containers-storage:NAME (overlay) gives the tree of the archive import, with podman's image id", async () => {
  const app = await debianAppImage();
  const podman = new PrivatePodman(mkdtempSync(join(tmpdir(), 'spm-')));
  try {
    await podman.init();
    await podman.load(app.dockerArchive);
    const id = (
      await podman.podman('images', '--no-trunc', '--format', '{{.ID}}', app.dockerRef)
    ).stdout.trim();
    const fromArchive = await importImage(store, `oci:${app.ociLayout}:${app.tag}`, {
      name: 'ref/debian-app',
    });
    const fromPodman = await importFromContainersStorage(store, app.dockerRef, { root: podman.root });
    assert.is(
      fromPodman.record.configDigest,
      id.startsWith('sha256:') ? id : `sha256:${id}`,
      "podman's image id",
    );
    assert.is(
      fromPodman.record.indexDigest,
      fromArchive.record.indexDigest,
      'the same tree, whiteouts applied',
    );
    assert.is(fromPodman.objectsWritten, 0, 'every object was already there');
    assert.equal(fromPodman.names, [app.dockerRef]);

    // By image id prefix, through the CLI: already complete in the store, so only named.
    const cli = strataSync([
      '--root',
      store.root,
      'image',
      'import',
      `containers-storage:${id.replace(/^sha256:/, '').slice(0, 12)}`,
      '--storage-root',
      podman.root,
      '--name',
      'x/app',
      '--json',
    ]);
    assert.is(cli.status, 0, cli.stderr);
    const out = JSON.parse(cli.stdout) as { existing: boolean; record: { indexDigest: string } };
    assert.ok(out.existing);
    assert.is(out.record.indexDigest, fromArchive.record.indexDigest);

    // Without tar-splits: the diff directories packed as they are, overlay's whiteouts (0:0
    // character devices, trusted.overlay.opaque) mapped. The same tree but for the root
    // directory's own mtime and mode, which the diff directory does not keep.
    const layerIds = (
      JSON.parse(readFileSync(join(podman.root, 'overlay-layers', 'layers.json'), 'utf8')) as { id: string }[]
    ).map((l) => l.id);
    for (const lid of layerIds) rmSync(join(podman.root, 'overlay-layers', `${lid}.tar-split.gz`));
    const bare = await openStore(join(dir, 'no-tar-split'));
    const walked = await importFromContainersStorage(bare, app.dockerRef, { root: podman.root });
    assert.is(walked.record.configDigest, fromPodman.record.configDigest);
    const expected = await walkTreeIndex(loadTreeIndex(store.root, fromArchive.record), store.root, {
      verifyObjects: false,
    });
    const actual = await walkTreeIndex(loadTreeIndex(bare.root, walked.record), bare.root, {
      verifyObjects: false,
    });
    assert.equal(diffTrees(expected, actual, { ignorePaths: (p) => p === '/' }), []);
    assert.ok(!actual.has('/etc/motd') && !actual.has('/var/cache/debconf'), 'whiteouts applied');
    assert.equal(
      [...actual.keys()].filter((p) => p.startsWith('/usr/share/doc/')),
      ['/usr/share/doc/README'],
      "the opaque directory hides the base layer's docs",
    );

    // A file changed in a layer's diff directory since podman stored it: refused (busybox: small).
    const busybox = await busyboxImage();
    await podman.load(busybox.dockerArchive);
    const images = JSON.parse(readFileSync(join(podman.root, 'overlay-images', 'images.json'), 'utf8')) as {
      names?: string[];
      layer: string;
    }[];
    const layer = images.find((i) => i.names?.includes(busybox.dockerRef))!.layer;

    // strata-runtime's question: which image is the container of this bundle?
    const cid = (await podman.podman('create', busybox.dockerRef, 'true')).stdout.trim();
    const bundleDir = join(podman.root, 'overlay-containers', cid, 'userdata');
    const bid = (
      await podman.podman('images', '--no-trunc', '--format', '{{.ID}}', busybox.dockerRef)
    ).stdout.trim();
    const of = await containersStorageImageOfBundle(bundleDir);
    assert.is(of?.imageId, bid.replace(/^sha256:/, ''));
    assert.is(of?.imageName, busybox.dockerRef);
    assert.is(of?.root, podman.root);
    appendFileSync(join(podman.root, 'overlay', layer, 'diff', 'etc', 'passwd'), 'changed\n');
    const other = await openStore(join(dir, 'tamper-podman'));
    try {
      await importFromContainersStorage(other, busybox.dockerRef, { root: podman.root });
      assert.unreachable('imported a changed layer');
    } catch (err) {
      assert.instance(err, DataLossError);
      assert.match((err as Error).message, /changed since it was stored/);
    }
    assert.equal(await listImages(other.root), [], 'nothing named');
  } finally {
    await podman.destroy();
    // The private podman's whole dir (its root, runroot and containers.conf), not only its root.
    rmSync(dirname(podman.root), { recursive: true, force: true });
  }
});

test('containers-storage: an unknown image or an empty graph root: NotFoundError naming it', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'strata-cs-'));
  try {
    await importFromContainersStorage(store, 'busybox', { root: empty });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, NotFoundError);
    assert.match((err as Error).message, /holds no images/);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test.run();
