// Image indexes: the platform is chosen (linux/amd64 by default), nested indexes are followed.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NotFoundError } from '../../../src/errors.js';
import { openSource } from '../../../src/store/source/index.js';
import { makeTar } from '../layer/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-layout-'));
const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');
function blob(data: Buffer | object): { digest: string; size: number } {
  const b = Buffer.isBuffer(data) ? data : Buffer.from(JSON.stringify(data));
  writeFileSync(join(dir, 'blobs/sha256', sha(b).slice(7)), b);
  return { digest: sha(b), size: b.length };
}

async function image(arch: string) {
  const layer = blob(await makeTar([{ name: 'arch', body: arch }]));
  const config = blob({
    architecture: arch,
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
  });
  const manifest = blob({
    schemaVersion: 2,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
  });
  return {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    ...manifest,
    platform: { os: 'linux', architecture: arch },
  };
}

test.before(async () => {
  mkdirSync(join(dir, 'blobs/sha256'), { recursive: true });
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const inner = blob({ schemaVersion: 2, manifests: [await image('arm64'), await image('amd64')] });
  const outer = blob({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...inner }],
  });
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.index.v1+json',
          ...outer,
          annotations: { 'org.opencontainers.image.ref.name': 'multi' },
        },
      ],
    }),
  );
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('nested indexes resolve to linux/amd64 by default, or the platform asked for', async () => {
  const amd = await openSource(`oci:${dir}:multi`);
  assert.is(amd.configJson.architecture, 'amd64');
  assert.equal(amd.names, ['multi']);
  const arm = await openSource(dir, { platform: { os: 'linux', architecture: 'arm64' } });
  assert.is(arm.configJson.architecture, 'arm64');
  assert.is.not(arm.manifestDigest, amd.manifestDigest);
});

test('a platform the index lacks is NotFoundError listing what it has', async () => {
  try {
    await openSource(dir, { platform: { os: 'linux', architecture: 's390x' } });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, NotFoundError);
    assert.match((err as Error).message, 'linux/s390x');
    assert.match((err as Error).message, 'linux/arm64');
  }
});

test.run();
