// Import benchmark: strata's import of the Debian test image against `umoci unpack` and
// `podman load` of the same image, in the same run and on the same filesystem; then the bytes on
// disk of two images in a strata store and in podman's, in two scenarios:
//
//   shared blob     debian + debian-app: the app image is built FROM debian, so both manifests
//                   list the same base layer blob. podman's overlay driver stores that layer once
//                   too, so this scenario cannot show content dedup; it is reported as it is.
//   rebuilt base    debian + debian-rebuilt: the same base files in a different layer blob (a
//                   rebuilt base image, or two builds from one distro snapshot). podman stores
//                   both layers in full; strata stores each file's content once.
//
// Bytes are what du reports as allocated (`du -s --block-size=1`, hard links once): what a user
// pays on disk. Apparent sizes (sum of file sizes) are shown next to them.
//
//   npm run bench:import [-- --runs N]          (after npm run build)
//   node --import tsx scripts/bench-import.ts [--runs N]
//
// Goals (issue 2): import no slower than umoci unpack; two images sharing a base take at most
// 0.6x podman's bytes. Every temp dir (under /var/tmp) and podman mount is removed at the end.
import { join } from 'node:path';
import { DEFAULT_INLINE_MAX } from '../src/store/layer/apply-layer.js';
import { importImage } from '../src/store/import.js';
import { openStore } from '../src/store/store.js';
import { debianAppImage, debianImage, debianRebuiltImage, type TestImage } from '../test/fixtures/images.js';
import { PrivatePodman } from '../test/fixtures/private-podman.js';
import { run } from '../test/fixtures/run.js';
import {
  apparentBytes,
  benchDir,
  diskBytes,
  loadAverage,
  median,
  mib,
  secs,
  timed,
} from './lib/bench-util.js';

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

interface Bytes {
  bytes: number;
  apparent: number;
}

async function measure(path: string): Promise<Bytes> {
  await settle();
  return { bytes: await diskBytes(path), apparent: await apparentBytes(path) };
}

/** Load the images into a fresh private podman store and measure it. */
async function podmanBytesFor(podman: PrivatePodman, images: TestImage[]): Promise<Bytes> {
  await podman.init();
  try {
    for (const img of images) await podman.load(img.ociArchive);
    return await measure(podman.root);
  } finally {
    await podman.destroy();
  }
}

interface Scenario {
  label: string;
  strata: Bytes;
  overlay: Bytes;
  vfs: Bytes;
  second: { ms: number; written: number; existing: number };
}

async function scenario(work: string, label: string, key: string, images: TestImage[]): Promise<Scenario> {
  const root = join(work, `strata-${key}`);
  const store = await openStore(root);
  await importImage(store, ociSpec(images[0]), { name: `bench/${key}:first` });
  const second = await timed(() => importImage(store, ociSpec(images[1]), { name: `bench/${key}:second` }));
  const strata = await measure(root);
  const overlay = await podmanBytesFor(new PrivatePodman(join(work, `pmo-${key}`), 'overlay'), images);
  const vfs = await podmanBytesFor(new PrivatePodman(join(work, `pmv-${key}`), 'vfs'), images);
  await run('rm', ['-rf', root]);
  const { objectsWritten: written, objectsExisting: existing } = second.value;
  return { label, strata, overlay, vfs, second: { ms: second.ms, written, existing } };
}

const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
const row = (label: string, value: string, note = '') =>
  console.log(`  ${label.padEnd(40)} ${value.padStart(12)}  ${note}`);
const ratio = (a: number, b: number) => (a / b).toFixed(2) + 'x';

function printScenario(s: Scenario): void {
  console.log(`bytes on disk (allocated, du -s --block-size=1), ${s.label}`);
  row('strata store', mib(s.strata.bytes), `apparent ${mib(s.strata.apparent)}`);
  row('podman storage (overlay, the default)', mib(s.overlay.bytes), `apparent ${mib(s.overlay.apparent)}`);
  row('podman storage (vfs, for reference)', mib(s.vfs.bytes), `apparent ${mib(s.vfs.apparent)}`);
  const r = s.strata.bytes / s.overlay.bytes;
  row('strata / podman overlay', r.toFixed(2) + 'x', `goal <= 0.60x: ${verdict(r <= 0.6)}`);
  row('strata / podman vfs', ratio(s.strata.bytes, s.vfs.bytes));
  row(
    'import of the second image',
    secs(s.second.ms),
    `${s.second.written} new objects, ${s.second.existing} already stored`,
  );
}

async function main(): Promise<void> {
  const debian = await debianImage();
  const app = await debianAppImage();
  const rebuilt = await debianRebuiltImage();
  // A short name: podman refuses a runroot longer than 50 characters.
  const { dir: work, cleanup } = await benchDir('sbi-');
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  try {
    // Warm the page cache with the inputs so every tool starts from the same place.
    const archives = [debian, app, rebuilt].map((i) => i.ociArchive);
    await run('sh', ['-c', 'cat "$@" > /dev/null', 'sh', ...archives]);
    await run('sh', ['-c', 'cat "$1"/* > /dev/null', 'sh', join(debian.ociLayout, 'blobs', 'sha256')]);

    const loadBefore = await loadAverage();
    const times = { strata: [] as number[], umoci: [] as number[], podman: [] as number[] };
    // Interleaved, so that a change in the machine's load hits every tool alike.
    for (let i = 0; i < RUNS; i++) {
      times.strata.push(await strataImport(work, debian, i));
      times.umoci.push(await umociUnpack(work, debian, i));
      times.podman.push(await podmanLoad(work, debian, i));
      await run('rm', ['-rf', join(work, `strata-${i}`), join(work, `umoci-${i}`)]);
    }
    const loadAfter = await loadAverage();

    const shared = await scenario(work, 'debian + debian-app (one shared base layer blob)', 'shared', [
      debian,
      app,
    ]);
    const rebuild = await scenario(
      work,
      'debian + debian-rebuilt (same base files, different layer blobs)',
      'rebuilt',
      [debian, rebuilt],
    );
    const unpacked = await diskBytes(debian.rootfs);

    const s = median(times.strata);
    const u = median(times.umoci);
    const p = median(times.podman);
    console.log(
      `strata import benchmark — Debian bookworm minbase (${mib(unpacked)} unpacked), median of ${RUNS}` +
        ` (inlineMax ${DEFAULT_INLINE_MAX})`,
    );
    console.log(`load average (1/5/15 min): ${loadBefore} before the timed runs, ${loadAfter} after`);
    console.log('import of one image (gzip layers, warm page cache, fresh destination each run)');
    row('strata image import (oci layout)', secs(s), `runs: ${times.strata.map(secs).join(', ')}`);
    row('umoci unpack (oci layout)', secs(u), `runs: ${times.umoci.map(secs).join(', ')}`);
    row('podman load (oci-archive, overlay)', secs(p), `runs: ${times.podman.map(secs).join(', ')}`);
    row('strata / umoci', ratio(s, u), `goal <= 1.00x: ${verdict(s <= u)}`);
    row('strata / podman', ratio(s, p));
    printScenario(shared);
    printScenario(rebuild);
  } finally {
    process.off('SIGINT', onSignal);
    await cleanup();
  }
}

await main();
