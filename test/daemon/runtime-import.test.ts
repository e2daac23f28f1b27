// The daemon's import on first use (src/daemon/runtime-import.ts) without podman: a graph root
// that holds no images, so every import fails. Concurrent requests share one import; a container
// that cannot wait passes through ("pending") while the import goes on; a failure is remembered
// for retryMs, then tried again.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { eventually } from '../integration/harness.js';

import type { LogLevel } from '../../src/daemon/log.js';
import { ContainersStorageImporter } from '../../src/daemon/runtime-import.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-rt-import-'));
const lines: string[] = [];
const logger = {
  file: join(dir, 'daemon.log'),
  log: (level: LogLevel, message: string) => void lines.push(`${level} ${message}`),
};
const ID = 'a'.repeat(64);

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('one import for concurrent requests; pending past waitMs; a failure remembered, then retried', async () => {
  const graph = join(dir, 'graph');
  const importer = new ContainersStorageImporter({
    storeRoot: join(dir, 'store'),
    logger,
    waitMs: 1,
    retryMs: 1000,
  });
  // Both wait 1 ms: the CLI takes longer, so both pass through while the one import goes on.
  const [a, b] = await Promise.all([
    importer.importFor(graph, ID, 'c1'),
    importer.importFor(graph, ID, 'c2'),
  ]);
  assert.is(a.kind, 'pending');
  assert.match(a.kind === 'pending' ? a.message : '', 'takes longer than 0.001 s; it goes on');
  assert.is(b.kind, 'pending');
  assert.ok(await eventually(() => lines.some((l) => l.startsWith('warn ')), 30_000), lines.join('\n'));
  const failedBy = Date.now();
  const failed = await importer.importFor(graph, ID, 'c3');
  assert.is(failed.kind, 'failed');
  const message = failed.kind === 'failed' ? failed.message : '';
  assert.match(message, `importing image sha256:${ID} from containers/storage ${graph} failed: `);
  assert.match(message, /\(tried again in 1 s\)$/);
  await new Promise((r) => setTimeout(r, Math.max(0, failedBy + 1100 - Date.now())));
  assert.is((await importer.importFor(graph, ID, 'c4')).kind, 'pending', 'tried again');
  const started = lines.filter((l) => l.startsWith('info') && l.includes(`importing image sha256:${ID}`));
  assert.equal(
    started.map((l) => l.split(':')[0]),
    ['info c1', 'info c4'],
    'one import for c1 and c2; c3 got the remembered failure',
  );
  // c4's import ends (fails) before the temp dir goes.
  assert.ok(await eventually(() => lines.filter((l) => l.startsWith('warn ')).length === 2, 30_000));
});

test('a bad image id is refused without running anything', async () => {
  const importer = new ContainersStorageImporter({ storeRoot: join(dir, 'store'), logger });
  const r = await importer.importFor(join(dir, 'graph'), '../etc', 'c');
  assert.equal(r, { kind: 'failed', message: 'bad image id ../etc' });
});

test.run();
