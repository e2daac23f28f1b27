// The image bench-fs measures: the Debian test image plus a layer holding one 512 MiB file of
// pseudo-random bytes (/bench/big.bin), built once and cached next to the test fixtures, with
// everything the other filesystems need: umoci's unpack (the ext4 tree), each layer extracted on
// its own (overlay lowers) and a squashfs of the rootfs.
import { randomFillSync } from 'node:crypto';
import { cp, mkdir, open, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { buildOnce } from '../../test/fixtures/build-lock.js';
import { debianImage } from '../../test/fixtures/images.js';
import { run } from '../../test/fixtures/run.js';

export const BIG_PATH = '/bench/big.bin';
export const BIG_BYTES = 512 * 1024 * 1024;

export interface BenchImage {
  /** OCI layout tagged `latest`. */
  ociLayout: string;
  /** umoci unpack of the image. */
  rootfs: string;
  /** Each layer extracted into its own directory, base first. */
  layers: string[];
  /** mksquashfs of rootfs (lz4). */
  squashfs: string;
}

async function writeBigFile(path: string): Promise<void> {
  const f = await open(path, 'w', 0o644);
  const chunk = Buffer.alloc(16 * 1024 * 1024);
  try {
    for (let done = 0; done < BIG_BYTES; done += chunk.length) {
      randomFillSync(chunk); // incompressible, so no filesystem gets an easy ride
      await f.write(chunk);
    }
  } finally {
    await f.close();
  }
}

async function extractLayers(layout: string, into: string): Promise<void> {
  const blob = (d: string) => join(layout, 'blobs', 'sha256', d.replace(/^sha256:/, ''));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  const manifest = JSON.parse(await readFile(blob(index.manifests[0].digest), 'utf8')) as {
    layers: { digest: string; mediaType: string }[];
  };
  for (const [i, layer] of manifest.layers.entries()) {
    const dir = join(into, String(i));
    await mkdir(dir, { recursive: true });
    const z = layer.mediaType.endsWith('+gzip') ? ['-z'] : [];
    await run('tar', [
      '-x',
      ...z,
      '-f',
      blob(layer.digest),
      '-C',
      dir,
      '--numeric-owner',
      '--same-owner',
      '-p',
      '--xattrs',
      '--xattrs-include=*',
    ]);
    // Both layers are whiteout-free (debootstrap, then one added file), so plain lowers are exact.
    const { stdout } = await run('find', [dir, '-name', '.wh.*', '-print', '-quit']);
    if (stdout.trim() !== '') throw new Error(`layer ${layer.digest} has whiteouts (${stdout.trim()})`);
  }
}

export async function benchImage(): Promise<BenchImage> {
  const debian = await debianImage();
  const dir = await buildOnce('bench-debian-big-v1', async (tmp) => {
    const layout = join(tmp, 'oci');
    await cp(debian.ociLayout, layout, { recursive: true });
    const staging = join(tmp, 'staging');
    await mkdir(join(staging, 'bench'), { recursive: true });
    await writeBigFile(join(staging, BIG_PATH));
    const tar = join(tmp, 'big-layer.tar');
    await run('tar', ['-C', staging, '--numeric-owner', '--owner=0', '--group=0', '-cf', tar, 'bench']);
    await run('umoci', ['raw', 'add-layer', '--image', `${layout}:latest`, tar]);
    await rm(staging, { recursive: true });
    await rm(tar);
    await run('umoci', ['gc', '--layout', layout]);
    await run('umoci', ['unpack', '--image', `${layout}:latest`, join(tmp, 'bundle')]);
    await extractLayers(layout, join(tmp, 'layers'));
    await run('mksquashfs', [
      join(tmp, 'bundle', 'rootfs'),
      join(tmp, 'rootfs.sqsh'),
      '-comp',
      'lz4',
      '-noappend',
      '-quiet',
      '-no-progress',
    ]);
  });
  const layers = (await readdir(join(dir, 'layers'))).sort((a, b) => Number(a) - Number(b));
  return {
    ociLayout: join(dir, 'oci'),
    rootfs: join(dir, 'bundle', 'rootfs'),
    layers: layers.map((l) => join(dir, 'layers', l)),
    squashfs: join(dir, 'rootfs.sqsh'),
  };
}
