import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { busyboxImage } from '../fixtures/images.js';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

test('image import/ls/inspect/tag/rm, --json, exit codes by kind, STRATA_ROOT', async () => {
  const img = await busyboxImage();
  const dir = await mkdtemp(join(tmpdir(), 'strata-cli-'));
  const root = join(dir, 'root');
  const strata = (...args: string[]) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      encoding: 'utf8',
      env: { ...process.env, STRATA_ROOT: root },
    });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  try {
    const imp = strata('image', 'import', `oci:${img.ociLayout}:latest`, '--name', 'bb', '--json');
    assert.is(imp.code, 0, imp.err);
    assert.is(imp.err, '', 'no progress output when stderr is not a TTY');
    const digest = JSON.parse(imp.out).record.manifestDigest as string;
    const ls = JSON.parse(strata('image', 'ls', '--json').out) as { names: string[] }[];
    assert.equal(
      ls.map((i) => i.names),
      [['bb:latest']],
    );
    assert.is(strata('image', 'tag', 'bb', 'bb:v2').code, 0);
    const inspect = JSON.parse(strata('image', 'inspect', digest.slice(7, 19), '--json').out);
    assert.equal(inspect.names, ['bb:latest', 'bb:v2']);
    assert.match(strata('image', 'inspect', 'bb:v2').out, /Files: +\d+/);
    assert.match(strata('image', 'ls').out, /^NAME +DIGEST/);

    const missing = strata('image', 'inspect', 'nope');
    assert.is(missing.code, 3);
    assert.is(missing.err, 'strata: no image named "nope"\n');
    assert.is(strata('image', 'inspect', 'Bad Name').code, 2);
    assert.is(
      strata('--root', join(dir, 'other'), 'image', 'ls', '--json').out.trim(),
      '[]',
      '--root beats STRATA_ROOT',
    );

    await writeFile(join(root, 'refs', 'junk%3Alatest'), 'garbage');
    const bad = strata('fsck', '--json');
    assert.is(bad.code, 1);
    assert.is(JSON.parse(bad.out).findings[0].kind, 'ref-invalid');
    assert.is(strata('fsck', '--repair').code, 0);

    assert.match(strata('image', 'rm', 'bb', 'bb:v2').out, /deleted sha256:/);
    assert.match(strata('gc').out, /^removed \d+ objects/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
