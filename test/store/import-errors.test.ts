// Import errors name the image source, the layer digest and the entry (issue 7 item 14): no
// "layer layer:", no bare "Stream was destroyed". Each hostile archive is built here; after each
// failure nothing of the import is visible and fsck finds the store clean.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InvalidArgumentError, StrataError } from '../../src/errors.js';
import {
  hostileStore,
  importFails,
  plain,
  sha,
  writeArchive,
  ZST,
  type HostileLayer,
} from './hostile-import.js';
import { makeTar } from './layer/helpers.js';

async function fails(layers: HostileLayer[]): Promise<{ err: StrataError; path: string; digest: string }> {
  const { store, dir, cleanup } = await hostileStore();
  try {
    const spec = await writeArchive(dir, layers);
    const err = await importFails(store, spec);
    const path = spec.slice('oci-archive:'.length);
    const digest = sha(layers[layers.length - 1].blob);
    assert.match(err.message, path, `names the source: ${err.message}`);
    assert.match(err.message, `layer ${digest}`, `names the layer: ${err.message}`);
    assert.not.match(err.message, 'layer layer');
    assert.not.match(err.message, '(unnamed)');
    return { err, path, digest };
  } finally {
    await cleanup();
  }
}

test('an entry refused by the applier: source, layer digest and entry', async () => {
  const ok = plain(await makeTar([{ name: 'etc/motd', body: 'fine' }]));
  const bad = plain(await makeTar([{ name: 'etc/../../evil', body: 'x' }]));
  const { err } = await fails([ok, bad]);
  assert.instance(err, InvalidArgumentError);
  assert.match(err.message, `entry "etc/../../evil" escapes the root`);
  assert.is(err.path, 'etc/../../evil');
});

for (const [what, cut] of [
  ['buffered (under 1 MiB read)', 512 * 3 + 1000],
  ['streamed to the writer', 512 * 3 + 2_000_000],
] as const) {
  test(`a file whose size runs past the layer's data (${what}): says so, naming the entry`, async () => {
    const tar = await makeTar([
      { name: 'small', body: 'x' },
      { name: 'usr/lib/big', body: randomBytes(3_000_000) },
    ]);
    const { err } = await fails([plain(tar.subarray(0, cut))]);
    assert.instance(err, InvalidArgumentError);
    assert.match(
      err.message,
      `entry "usr/lib/big": the layer's data ends before the 3000000 bytes its header gives`,
    );
    assert.not.match(err.message, /^Stream was destroyed/);
  });
}

test('corrupt zstd data inside a file: source, layer digest and the entry being read', async () => {
  const tar = await makeTar([{ name: 'data/blob', body: randomBytes(4_000_000) }]);
  const zst = Buffer.from(execFileSync('zstd', ['-q', '-c', '-1'], { input: tar, maxBuffer: 1 << 30 }));
  for (let i = 2_000_000; i < 2_000_100; i++) zst[i] ^= 0x5a;
  const { err } = await fails([{ blob: zst, mediaType: ZST, diffId: sha(tar) }]);
  assert.instance(err, InvalidArgumentError);
  assert.match(err.message, /corrupt or truncated zstd data: .+ \(at entry "data\/blob"\)/);
});

test.run();
