// Decompression bombs (issue 7 item 6): a layer that decompresses far beyond what its compressed
// size could justify is stopped at MAX_RATIO; an import that would take the store's filesystem
// under its free-space floor is refused at the start or stopped mid-way. Each hostile layer is
// built here; the floor is hit on a small tmpfs store mounted by the test. After each failure
// nothing is visible and fsck finds the store clean.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FailedPreconditionError, InvalidArgumentError } from '../../src/errors.js';
import { importImage } from '../../src/store/import.js';
import { MAX_RATIO } from '../../src/store/source/layer-stream.js';
import { parseMinFree } from '../../src/store/space-floor.js';
import { openStore } from '../../src/store/store.js';
import { mountinfoMentions } from '../native/mini-fuse.js';
import {
  GZ,
  ZST,
  hostileStore,
  importFails,
  plain,
  sha,
  writeArchive,
  type HostileLayer,
} from './hostile-import.js';
import { makeTar } from './layer/helpers.js';

/** A layer holding one file of `mib` MiB of zeros, as a tar compressed by `compress`. */
function zeroLayer(dir: string, mib: number, compress: string, mediaType: string): HostileLayer {
  const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { cwd: dir, maxBuffer: 1 << 30 });
  sh(`rm -f zeros && truncate -s ${mib}M zeros`);
  const tar = sh('tar --numeric-owner -cf - zeros');
  const blob = execFileSync('sh', ['-c', compress], { input: tar, maxBuffer: 1 << 30 });
  sh('rm -f zeros');
  return { blob, mediaType, diffId: sha(tar) };
}

/** A store on its own small tmpfs; unmounted and removed by cleanup. */
async function tmpfsStore(mib: number) {
  const dir = await mkdtemp(join(tmpdir(), 'strata-floor-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'strata-floor-test', dir]);
  return {
    store: await openStore(join(dir, 'root')),
    dir,
    cleanup: async () => {
      execFileSync('umount', [dir]);
      await rm(dir, { recursive: true, force: true });
      assert.not.ok(mountinfoMentions(dir), 'the tmpfs is gone');
    },
  };
}

test('parseMinFree: bytes, units and shares; nonsense refused', () => {
  assert.equal(parseMinFree('1G'), { bytes: 2 ** 30 });
  assert.equal(parseMinFree('512M'), { bytes: 512 * 2 ** 20 });
  assert.equal(parseMinFree('1.5GiB'), { bytes: 1.5 * 2 ** 30 });
  assert.equal(parseMinFree('0'), { bytes: 0 });
  assert.equal(parseMinFree(4096), { bytes: 4096 });
  assert.equal(parseMinFree('5%'), { percent: 5 });
  for (const bad of ['', 'lots', '-1G', '101%', '5 %%']) {
    assert.throws(
      () => parseMinFree(bad),
      (e: Error) => e instanceof InvalidArgumentError,
      bad,
    );
  }
});

test(`zstd layer past ${MAX_RATIO}:1 is stopped as a bomb, naming source and layer`, async () => {
  const { store, dir, cleanup } = await hostileStore();
  try {
    const layer = zeroLayer(dir, 256, 'zstd -q -c -19', ZST);
    assert.ok(layer.blob.length < 64 * 1024, `bomb is ${layer.blob.length} bytes`);
    const spec = await writeArchive(dir, [layer]);
    const err = await importFails(store, spec, { minFree: 0 });
    assert.instance(err, InvalidArgumentError, err.message);
    assert.match(err.message, `layer ${sha(layer.blob)}`);
    assert.match(err.message, spec.slice('oci-archive:'.length));
    assert.match(err.message, `over ${MAX_RATIO} times its ${layer.blob.length} compressed bytes`);
    assert.match(err.message, 'refused as a decompression bomb');
    assert.match(err.message, '(at entry "zeros")');
  } finally {
    await cleanup();
  }
});

test('gzip of 128 MiB of zeros into a 48 MiB store: stopped at the floor, the space given back', async () => {
  const { store, dir, cleanup } = await tmpfsStore(48);
  const work = await hostileStore();
  try {
    const layer = zeroLayer(work.dir, 128, 'gzip -1 -c', GZ);
    const spec = await writeArchive(work.dir, [layer]);
    const before = await statfs(dir);
    const err = await importFails(store, spec, { minFree: '8M' });
    assert.instance(err, FailedPreconditionError, err.message);
    assert.match(err.message, `layer ${sha(layer.blob)}`);
    assert.match(err.message, spec.slice('oci-archive:'.length));
    assert.match(
      err.message,
      /under its free-space floor of 8 MiB \(--min-free or STRATA_MIN_FREE, now 8M\)/,
    );
    assert.match(err.message, 'entry "zeros"');
    const after = await statfs(dir);
    assert.ok(after.bavail >= before.bavail - 16, 'the partial object is gone');
  } finally {
    await work.cleanup();
    await cleanup();
  }
});

test('an import whose compressed layers alone would cross the floor is refused before it starts', async () => {
  const { store, dir, cleanup } = await tmpfsStore(16);
  try {
    const tar = await makeTar([{ name: 'etc/motd', body: 'hello\n' }]);
    const spec = await writeArchive(dir, [plain(tar)]);
    const err = await importFails(store, spec, { minFree: '100%' });
    assert.instance(err, FailedPreconditionError, err.message);
    assert.match(err.message, spec.slice('oci-archive:'.length));
    assert.match(
      err.message,
      /this import needs at least \d+ KiB more: the import would take it under its free-space floor of 16 MiB/,
    );
    // The same import with the env default lowered goes through: the floor is configurable.
    process.env.STRATA_MIN_FREE = '1M';
    try {
      const r = await importImage(store, spec, { name: 'fits' });
      assert.is(r.record.fileCount, 1);
    } finally {
      delete process.env.STRATA_MIN_FREE;
    }
  } finally {
    await cleanup();
  }
});

test.run();
