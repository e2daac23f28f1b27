// openSource reads what real tools write: an OCI layout made with umoci, converted by skopeo to an
// oci-archive and a docker-archive; each must give the same tree with busybox in it.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NotFoundError } from '../../../src/errors.js';
import { applyLayer } from '../../../src/store/layer/apply-layer.js';
import { openSource, parseSpec } from '../../../src/store/source/index.js';
import { encodeTreeIndex, newDir } from '../../../src/store/tree-index-encode.js';
import { TreeIndex } from '../../../src/store/tree-index.js';
import { MemorySink } from '../layer/helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'strata-source-'));
const layout = join(tmp, 'layout');
const busyboxDigest = createHash('sha256').update(readFileSync('/bin/busybox')).digest('hex');
const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: 'pipe' });

test.before(() => {
  run('umoci', ['init', '--layout', layout]);
  run('umoci', ['new', '--image', `${layout}:latest`]);
  const bundle = join(tmp, 'bundle');
  run('umoci', ['unpack', '--image', `${layout}:latest`, bundle]);
  run('mkdir', ['-p', join(bundle, 'rootfs/bin')]);
  copyFileSync('/bin/busybox', join(bundle, 'rootfs/bin/busybox'));
  symlinkSync('busybox', join(bundle, 'rootfs/bin/sh'));
  run('umoci', ['repack', '--image', `${layout}:latest`, bundle]);
  run('skopeo', ['copy', '-q', `oci:${layout}:latest`, `oci-archive:${join(tmp, 'img.oci.tar')}:latest`]);
  run('skopeo', [
    'copy',
    '-q',
    `oci:${layout}:latest`,
    `docker-archive:${join(tmp, 'img.docker.tar')}:busybox:latest`,
  ]);
});

test.after(() => {
  rmSync(tmp, { recursive: true, force: true });
  assert.not.ok(existsSync(tmp));
});

async function tree(spec: string) {
  const src = await openSource(spec);
  try {
    const root = newDir();
    const sink = new MemorySink();
    for (const layer of src.layers) await applyLayer(root, await layer.open(), sink, { layer: layer.digest });
    return { src, ix: TreeIndex.decode(encodeTreeIndex(root)) };
  } finally {
    await src.close();
  }
}

for (const [label, spec, names] of [
  ['oci layout', () => `oci:${layout}:latest`, ['latest']],
  ['bare oci layout dir', () => layout, ['latest']],
  ['oci-archive', () => `oci-archive:${join(tmp, 'img.oci.tar')}`, ['latest']],
  ['bare oci-archive', () => join(tmp, 'img.oci.tar'), ['latest']],
  [
    'docker-archive',
    () => `docker-archive:${join(tmp, 'img.docker.tar')}:busybox:latest`,
    ['docker.io/library/busybox:latest'],
  ],
  ['bare docker-archive', () => join(tmp, 'img.docker.tar'), ['docker.io/library/busybox:latest']],
] as const) {
  test(`${label}: busybox is in the tree`, async () => {
    const { src, ix } = await tree(spec());
    assert.equal(src.names, names);
    assert.is(src.configJson.rootfs.diff_ids.length, src.layers.length);
    const c = ix.content(ix.resolve('bin/busybox'));
    assert.equal(c, { kind: 'object', digest: busyboxDigest });
    assert.is(ix.readlink(ix.resolve('bin/sh')).toString(), 'busybox');
  });
}

test('the same archive gives the same docker-archive manifest digest; oci formats agree', async () => {
  const a = await openSource(join(tmp, 'img.docker.tar'));
  const b = await openSource(join(tmp, 'img.docker.tar'));
  const o = await openSource(`oci:${layout}:latest`);
  const oa = await openSource(join(tmp, 'img.oci.tar'));
  assert.is(a.manifestDigest, b.manifestDigest);
  assert.is(o.manifestDigest, oa.manifestDigest);
  assert.equal(
    a.layers.map((l) => l.diffId),
    o.layers.map((l) => l.diffId),
  );
  await Promise.all([a, b, o, oa].map((s) => s.close()));
});

test('unknown tags and paths are NotFoundError naming them', async () => {
  try {
    await openSource(`oci:${layout}:nope`);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, NotFoundError);
    assert.match((err as Error).message, '"nope"');
  }
  try {
    await parseSpec(join(tmp, 'no-such-thing'));
    assert.unreachable();
  } catch (err) {
    assert.instance(err, NotFoundError);
  }
});

test.run();
