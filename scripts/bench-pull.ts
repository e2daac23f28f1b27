// Pull benchmark, in one run, from a loopback registry (Debian's docker-registry on 127.0.0.1,
// private storage) holding the Debian test image and debian-app (debian + one layer):
//
//   strata pull (empty store)        download + verify + decompress + apply + commit
//   strata pull (base in store)      debian-app into a store holding debian: only its new layer
//   skopeo copy docker://… oci:DIR   download + verify only (it does not even unpack)
//   podman pull (private root)       download + unpack into overlay storage
//
// Also the decompression throughput of each layer strata pulled (uncompressed bytes over the
// time from its first byte to the end of its application). Medians of --runs N (default 3),
// fresh destinations each run, `sync` between runs; the load average is printed with the
// numbers (the machine is shared). Destinations are removed at the end, not between runs: on an
// ext4 without a journal (this machine's /) every inode allocated soon after thousands were
// freed in the same block group scans past them (ext4's recently_deleted(), ~15% of a pull's
// CPU in perf), which charged each pull for the previous run's cleanup.
//
//   npm run bench:pull [-- --runs N]      (after npm run build)
//
// Goals (issue 11): strata pull + import <= 0.8x skopeo's copy, <= 0.5x podman pull; the second
// image sharing a base downloads only its new layers.
import { join } from 'node:path';
import { pullImage, type PullResult } from '../src/registry/pull.js';
import { emptyRegistriesConf } from '../src/registry/registries-conf.js';
import { importImage } from '../src/store/import.js';
import { openStore } from '../src/store/store.js';
import { debianAppImage, debianImage } from '../test/fixtures/images.js';
import { PrivatePodman } from '../test/fixtures/private-podman.js';
import { push, startRegistry } from '../test/fixtures/registry.js';
import { run } from '../test/fixtures/run.js';
import { benchDir, loadAverage, median, mib, secs, timed } from './lib/bench-util.js';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 3;
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error('--runs takes a positive integer');

const OPTS = { conf: emptyRegistriesConf(), tlsVerify: false, minFree: 0 } as const;

async function main(): Promise<void> {
  const { dir, cleanup } = await benchDir('strata-bench-pull-');
  const reg = await startRegistry({ storage: join(dir, 'registry') });
  const podmans: PrivatePodman[] = [];
  try {
    const [deb, app] = [await debianImage(), await debianAppImage()];
    await push(`oci:${deb.ociLayout}:latest`, `${reg.host}/bench/debian:latest`);
    await push(`oci:${app.ociLayout}:latest`, `${reg.host}/bench/debian-app:latest`);
    const debRef = `${reg.host}/bench/debian:latest`;
    const appRef = `${reg.host}/bench/debian-app:latest`;
    const t = {
      empty: [] as number[],
      base: [] as number[],
      skopeo: [] as number[],
      podman: [] as number[],
      imp: [] as number[],
    };
    let baseDownloaded = 0;
    let appTotal = 0;
    let layers: PullResult['layers'] = [];
    const loadBefore = await loadAverage();
    for (let i = 0; i < RUNS; i++) {
      await run('sync', []);
      const store = await openStore(join(dir, `strata-${i}`));
      const a = await timed(() => pullImage(store, debRef, OPTS));
      t.empty.push(a.ms);
      layers = a.value.layers;
      await run('sync', []);
      let downloaded = 0;
      const b = await timed(() =>
        pullImage(store, appRef, {
          ...OPTS,
          onEvent: (e) => e.type === 'layer-done' && (downloaded += e.size),
        }),
      );
      t.base.push(b.ms);
      baseDownloaded = downloaded;
      appTotal = b.value.record.layers.reduce((n, l) => n + l.size, 0);

      // The same image imported from its OCI layout: what the pull costs over a local import.
      await run('sync', []);
      const local = await openStore(join(dir, `import-${i}`));
      t.imp.push(
        (
          await timed(() =>
            importImage(local, `oci:${deb.ociLayout}:latest`, { name: 'bench/debian', minFree: 0 }),
          )
        ).ms,
      );

      await run('sync', []);
      const oci = join(dir, `skopeo-${i}`);
      t.skopeo.push(
        (
          await timed(() =>
            run('skopeo', [
              'copy',
              '--quiet',
              '--src-tls-verify=false',
              `docker://${debRef}`,
              `oci:${oci}:latest`,
            ]),
          )
        ).ms,
      );

      const podman = new PrivatePodman(join(dir, `pm${i}`));
      podmans.push(podman);
      await podman.init();
      await run('sync', []);
      t.podman.push((await timed(() => podman.podman('pull', '--quiet', '--tls-verify=false', debRef))).ms);
    }
    const loadAfter = await loadAverage();
    const m = {
      empty: median(t.empty),
      base: median(t.base),
      skopeo: median(t.skopeo),
      imp: median(t.imp),
      podman: median(t.podman),
    };
    const line = (label: string, ms: number, note = '') =>
      console.log(`  ${label.padEnd(44)} ${secs(ms).padStart(9)}  ${note}`);
    console.log(`load average (1/5/15 min): ${loadBefore} before, ${loadAfter} after; ${RUNS} runs, medians`);
    console.log(`pull of the Debian test image from ${reg.host} (loopback docker-registry 2.8)`);
    const each = (xs: number[]) => xs.map((x) => (x / 1000).toFixed(2)).join(' ');
    console.log(
      `  each run (s): strata ${each(t.empty)} | import ${each(t.imp)} | skopeo ${each(t.skopeo)} | ` +
        `podman ${each(t.podman)} | base ${each(t.base)}`,
    );
    line(
      'strata image pull (empty store)',
      m.empty,
      `${(m.empty / m.skopeo).toFixed(2)}x skopeo, ${(m.empty / m.podman).toFixed(2)}x podman`,
    );
    line(
      'strata image import oci:DIR (same image, local)',
      m.imp,
      `pull costs ${(m.empty / m.imp).toFixed(2)}x the local import`,
    );
    line('skopeo copy docker://… oci:DIR (no unpack)', m.skopeo);
    line('podman pull (private root, overlay)', m.podman);
    line(
      'strata pull debian-app, debian in the store',
      m.base,
      `downloaded ${mib(baseDownloaded)} of its ${mib(appTotal)} of layers`,
    );
    console.log('decompression + apply throughput per layer (strata, last run, empty store):');
    for (const l of layers) {
      const rate = l.ms > 0 ? (l.uncompressed / 1048576 / (l.ms / 1000)).toFixed(0) : '-';
      console.log(
        `  ${l.digest.slice(0, 19)}  ${mib(l.size).padStart(10)} -> ${mib(l.uncompressed).padStart(10)}  ${secs(l.ms)}  ${rate} MiB/s`,
      );
    }
  } finally {
    for (const p of podmans) await p.destroy();
    await reg.stop();
    await cleanup();
  }
}

await main();
