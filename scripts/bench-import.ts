// Import benchmark: strata's import of the Debian test image against `umoci unpack` and
// `podman load` of the same image, in the same run and on the same filesystem; then the bytes on
// disk of two images sharing a base (debian + debian-app) in a strata store and in podman's.
//
//   npm run bench:import [-- --runs N]          (after npm run build)
//   node --import tsx scripts/bench-import.ts [--runs N]
//
// Goals (issue 2): import no slower than umoci unpack; two images sharing a base take at most
// 0.6x podman's bytes. Every temp dir (under /var/tmp) and podman mount is removed at the end.
import { join } from 'node:path';
import { importImage } from '../src/store/import.js';
import { openStore } from '../src/store/store.js';
import { debianAppImage, debianImage, type TestImage } from '../test/fixtures/images.js';
import { run } from '../test/fixtures/run.js';
import { apparentBytes, benchDir, diskBytes, median, mib, secs, timed } from './lib/bench-util.js';
import { PrivatePodman } from '../test/fixtures/private-podman.js';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 3;
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error('--runs takes a positive integer');

function ociSpec(img: TestImage): string {
  return `oci:${img.ociLayout}:${img.tag}`;
}

async function settle(): Promise<void> {
  // Writeback of the previous run must not be billed to the next one.
  await run('sync', []);
}

async function strataImport(work: string, img: TestImage, i: number): Promise<number> {
  const store = await openStore(join(work, `strata-${i}`));
  await settle();
  const { ms } = await timed(() => importImage(store, ociSpec(img), { name: `bench/debian:${i}` }));
  return ms;
}

async function umociUnpack(work: string, img: TestImage, i: number): Promise<number> {
  await settle();
  const { ms } = await timed(() =>
    run('umoci', ['unpack', '--image', `${img.ociLayout}:${img.tag}`, join(work, `umoci-${i}`)]),
  );
  return ms;
}

async function podmanLoad(work: string, img: TestImage, i: number): Promise<number> {
  const podman = new PrivatePodman(join(work, `pm${i}`));
  await podman.init();
  try {
    await settle();
    const { ms } = await timed(() => podman.load(img.ociArchive));
    return ms;
  } finally {
    await podman.destroy();
  }
}

/** Load the images into a fresh private podman store and measure it. */
async function podmanBytesFor(
  podman: PrivatePodman,
  images: TestImage[],
): Promise<{ bytes: number; apparent: number }> {
  await podman.init();
  try {
    for (const img of images) await podman.load(img.ociArchive);
    await settle();
    return { bytes: await diskBytes(podman.root), apparent: await apparentBytes(podman.root) };
  } finally {
    await podman.destroy();
  }
}

async function main(): Promise<void> {
  const debian = await debianImage();
  const app = await debianAppImage();
  // A short name: podman refuses a runroot longer than 50 characters.
  const { dir: work, cleanup } = await benchDir('sbi-');
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  try {
    // Warm the page cache with the inputs so every tool starts from the same place.
    const blobs = join(debian.ociLayout, 'blobs', 'sha256');
    await run('sh', ['-c', 'cat "$@" > /dev/null', 'sh', debian.ociArchive, app.ociArchive]);
    await run('sh', ['-c', 'cat "$1"/* > /dev/null', 'sh', blobs]);

    const times = { strata: [] as number[], umoci: [] as number[], podman: [] as number[] };
    for (let i = 0; i < RUNS; i++) {
      times.strata.push(await strataImport(work, debian, i));
      times.umoci.push(await umociUnpack(work, debian, i));
      times.podman.push(await podmanLoad(work, debian, i));
      await run('rm', ['-rf', join(work, `strata-${i}`), join(work, `umoci-${i}`)]);
    }

    // Two images sharing a base, in one store each.
    const storeRoot = join(work, 'strata-shared');
    const store = await openStore(storeRoot);
    await importImage(store, ociSpec(debian), { name: 'bench/debian:latest' });
    const second = await timed(() => importImage(store, ociSpec(app), { name: 'bench/debian-app:latest' }));
    const overlay = await podmanBytesFor(new PrivatePodman(join(work, 'pmo'), 'overlay'), [debian, app]);
    const vfs = await podmanBytesFor(new PrivatePodman(join(work, 'pmv'), 'vfs'), [debian, app]);
    await settle();
    const strataBytes = await diskBytes(storeRoot);
    const strataApparent = await apparentBytes(storeRoot);
    const unpacked = await diskBytes(debian.rootfs);

    const s = median(times.strata);
    const u = median(times.umoci);
    const p = median(times.podman);
    const ratio = strataBytes / overlay.bytes;
    const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
    const row = (label: string, value: string, note = '') =>
      console.log(`  ${label.padEnd(38)} ${value.padStart(12)}  ${note}`);
    console.log(
      `strata import benchmark — Debian bookworm minbase (${mib(unpacked)} unpacked), median of ${RUNS}`,
    );
    console.log('import of one image (gzip layers, warm page cache, fresh destination each run)');
    row('strata image import (oci layout)', secs(s), `runs: ${times.strata.map(secs).join(', ')}`);
    row('umoci unpack (oci layout)', secs(u), `runs: ${times.umoci.map(secs).join(', ')}`);
    row('podman load (oci-archive, overlay)', secs(p), `runs: ${times.podman.map(secs).join(', ')}`);
    row('strata / umoci', (s / u).toFixed(2) + 'x', `goal <= 1.00x: ${verdict(s <= u)}`);
    row('strata / podman', (s / p).toFixed(2) + 'x');
    row(
      'second image sharing the base',
      secs(second.ms),
      `(debian-app after debian: ${second.value.objectsWritten} new objects)`,
    );
    console.log('bytes on disk, debian + debian-app (shared base layer)');
    row('strata store', mib(strataBytes), `apparent ${mib(strataApparent)}`);
    row('podman storage (overlay, the default)', mib(overlay.bytes), `apparent ${mib(overlay.apparent)}`);
    row('podman storage (vfs)', mib(vfs.bytes), `apparent ${mib(vfs.apparent)}`);
    row('strata / podman overlay', ratio.toFixed(2) + 'x', `goal <= 0.60x: ${verdict(ratio <= 0.6)}`);
    row('strata / podman vfs', (strataBytes / vfs.bytes).toFixed(2) + 'x');
  } finally {
    process.off('SIGINT', onSignal);
    await cleanup();
  }
}

await main();
