// The parts of the containerd and containers-storage sources that read what another program
// wrote, fed hostile or odd input: ctr's listing, storage.conf, image lookup, tar-split lines
// (paths that leave the layer, symlinked directories, changed files, giant lines).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { DataLossError, InvalidArgumentError } from '../../src/errors.js';
import { parseCtrImageList } from '../../src/store/source/containerd-content.js';
import {
  containersStorageImageOfBundle,
  findImage,
  parseStorageConf,
  tarFromSplit,
} from '../../src/store/source/containers-storage.js';

const D = 'sha256:' + 'a'.repeat(64);
const HEADER =
  'REF                TYPE                                       DIGEST  SIZE    PLATFORMS   LABELS';

test('ctr images ls: the row of exactly the name; sizes with spaces do not matter', () => {
  const out = [
    HEADER,
    `x/a:1 application/vnd.oci.image.manifest.v1+json ${D} 3.2 MiB linux/amd64 -`,
    `x/a:10 application/vnd.oci.image.index.v1+json sha256:${'b'.repeat(64)} 1.0 KiB linux/amd64,linux/arm64 -`,
  ].join('\n');
  assert.equal(parseCtrImageList(out, 'x/a:1'), {
    digest: D,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
  });
  assert.is(parseCtrImageList(out, 'x/a'), undefined);
  assert.throws(() => parseCtrImageList('something else\n', 'x'), /unexpected header/);
  assert.throws(
    () => parseCtrImageList(`${HEADER}\nx application/vnd.oci.image.manifest.v1+json sha256:zz`, 'x'),
    /malformed digest/,
  );
  assert.throws(
    () => parseCtrImageList(`${HEADER}\nx application/vnd.oci.image.layer.v1.tar ${D} 1 B - -`, 'x'),
    /unsupported media type/,
  );
});

test('storage.conf: graphroot and driver of [storage] only, either quote style', () => {
  const conf = `
[storage]
driver = "overlay"
graphroot = '/srv/containers'
[storage.options]
graphroot = "/not/this"
`;
  assert.equal(parseStorageConf(conf), { driver: 'overlay', graphroot: '/srv/containers' });
  assert.equal(parseStorageConf('graphroot = "/x"\n'), {});
});

test('findImage: exact name, short names, ids and unique prefixes', () => {
  const a = { id: 'ab'.repeat(32), layer: 'c'.repeat(64), names: ['docker.io/library/busybox:latest'] };
  const b = { id: 'ac'.repeat(32), layer: 'c'.repeat(64), names: ['localhost/app:1'] };
  const all = [a, b];
  assert.is(findImage(all, 'busybox'), a);
  assert.is(findImage(all, 'docker.io/library/busybox:latest'), a);
  assert.is(findImage(all, 'app:1'), b);
  assert.is(findImage(all, 'abab'), a);
  assert.is(findImage(all, `sha256:${b.id}`), b);
  assert.is(findImage(all, 'nothing'), undefined);
  assert.throws(() => findImage([a, { ...b, id: 'abab' + 'c'.repeat(60) }], 'abab'), /ambiguous/);
});

test("containersStorageImageOfBundle: a bundle that is not podman's is nobody's", async () => {
  assert.is(await containersStorageImageOfBundle('/tmp/some/bundle'), undefined);
  const id = 'e'.repeat(64);
  assert.is(
    await containersStorageImageOfBundle(`/nonexistent/overlay-containers/${id}/userdata`),
    undefined,
  );
});

let dir: string;
test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'strata-split-'));
  mkdirSync(join(dir, 'diff', 'etc'), { recursive: true });
  writeFileSync(join(dir, 'diff', 'etc', 'hostname'), 'box\n');
});
test.after.each(() => rmSync(dir, { recursive: true, force: true }));

function split(entries: object[], extra = ''): string {
  const file = join(dir, 'layer.tar-split.gz');
  writeFileSync(file, gzipSync(entries.map((e) => JSON.stringify(e)).join('\n') + '\n' + extra));
  return file;
}

async function collect(file: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of tarFromSplit(file, join(dir, 'diff'), 'test layer')) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function rejects(p: Promise<unknown>, want: RegExp | (new (...a: never[]) => Error)): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (want instanceof RegExp) assert.match((err as Error).message, want);
    else assert.instance(err, want);
    return;
  }
  assert.unreachable('expected a rejection');
}

const seg = (s: string) => ({ type: 2, payload: Buffer.from(s).toString('base64') });

test('tar-split: segments and file contents in order', async () => {
  const file = split([
    seg('H1'),
    { type: 1, name: './etc/hostname', size: 4 },
    seg('P'),
    { type: 1, name: 'etc/', size: 0 },
  ]);
  assert.is((await collect(file)).toString(), 'H1box\nP');
});

test('tar-split: a name that leaves the layer, or goes through a symlink, is refused', async () => {
  await rejects(collect(split([{ type: 1, name: '../../etc/passwd', size: 4 }])), InvalidArgumentError);
  symlinkSync('/etc', join(dir, 'diff', 'link'));
  await rejects(collect(split([{ type: 1, name: 'link/hostname', size: 4 }])), /non-directory/);
  symlinkSync('/etc/hostname', join(dir, 'diff', 'flink'));
  await rejects(collect(split([{ type: 1, name: 'flink', size: 4 }])), DataLossError);
});

test('tar-split: a file of another size, or missing, is DataLossError; junk lines and giant lines refused', async () => {
  await rejects(collect(split([{ type: 1, name: 'etc/hostname', size: 5 }])), /changed since it was stored/);
  await rejects(collect(split([{ type: 1, name: 'etc/nope', size: 5 }])), DataLossError);
  await rejects(collect(split([{ type: 7 }])), /unknown entry type/);
  await rejects(collect(split([], 'not json\n')), /not JSON/);
  await rejects(collect(split([], 'x'.repeat(17 << 20))), /longer than/);
});

test.run();
