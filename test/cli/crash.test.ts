// The real CLI under kill -9 and under concurrency: the store must stay fsck-clean and usable.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fsck } from '../../src/store/fsck.js';
import { listImages } from '../../src/store/records.js';
import { openStore } from '../../src/store/store.js';
import { busyboxImage, debianImage } from '../fixtures/images.js';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

function cli(
  root: string,
  args: string[],
  killAfterMs?: number,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--root', root, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer =
      killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

async function withRoot(fn: (root: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-cli-'));
  try {
    await fn(join(dir, 'root'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('kill -9 at several moments of an import: fsck has no errors, the same import then succeeds', async () => {
  const img = await debianImage();
  const spec = `oci:${img.ociLayout}:latest`;
  await withRoot(async (root) => {
    for (const ms of [400, 900, 1600, 2600, 3800]) {
      const r = await cli(root, ['image', 'import', spec, '--name', 'debian'], ms);
      const result = await fsck(await openStore(root));
      assert.is(
        result.errors,
        0,
        `after kill at ${ms} ms (exit ${r.code}): ${JSON.stringify(result.findings.slice(0, 3))}`,
      );
      assert.ok(result.findings.every((f) => f.kind === 'stale-ingest'));
    }
    const done = await cli(root, ['image', 'import', spec, '--name', 'debian']);
    assert.is(done.code, 0, done.stderr);
    const after = await fsck(await openStore(root), { repair: true });
    assert.is(after.errors, 0);
    assert.equal(
      (await listImages(root)).map((i) => i.names),
      [['debian:latest']],
    );
    assert.equal(await readdir(join(root, 'ingest')), []);
  });
});

test('two imports of one image at once, an import during gc, two gcs: all succeed', async () => {
  const img = await busyboxImage();
  const spec = `oci:${img.ociLayout}:latest`;
  await withRoot(async (root) => {
    const [a, b] = await Promise.all([
      cli(root, ['image', 'import', spec, '--name', 'a']),
      cli(root, ['image', 'import', spec, '--name', 'b']),
    ]);
    assert.is(a.code, 0, a.stderr);
    assert.is(b.code, 0, b.stderr);
    const [g1, imp, g2] = await Promise.all([
      cli(root, ['gc']),
      cli(root, ['image', 'import', spec, '--name', 'c']),
      cli(root, ['gc']),
    ]);
    for (const r of [g1, imp, g2]) assert.is(r.code, 0, r.stderr);
    const result = await fsck(await openStore(root));
    assert.equal(result.findings, []);
    assert.equal(
      (await listImages(root)).map((i) => i.names),
      [['a:latest', 'b:latest', 'c:latest']],
    );
  });
});

test.run();
