import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { BackgroundRemovals } from '../../src/daemon/removals.js';
import type { Logger } from '../../src/daemon/log.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-removals-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const warnings: string[] = [];
const logger: Logger = { file: join(dir, 'log'), log: (_level, message) => void warnings.push(message) };

function tree(path: string): string {
  mkdirSync(join(path, 'bundle', 'rootfs', 'proc'), { recursive: true });
  writeFileSync(join(path, 'bundle', 'config.json'), '{}');
  return path;
}

test('deletes in the background; settle waits for every deletion', async () => {
  const r = new BackgroundRemovals(logger);
  const a = tree(join(dir, `.removing-${'a'.repeat(64)}`));
  const b = tree(join(dir, `.removing-${'b'.repeat(64)}`));
  r.add(a);
  r.add(b);
  assert.is(r.size, 2);
  await r.settle();
  assert.is(r.size, 0);
  assert.not.ok(existsSync(a) || existsSync(b), 'both deleted');
  assert.equal(warnings, []);
});

test('sweepOnce deletes what an earlier daemon left in a run dir, once', async () => {
  const runDir = join(dir, 'run');
  const left = tree(join(runDir, `.removing-${'c'.repeat(64)}`));
  mkdirSync(join(runDir, 'containers'), { recursive: true });
  mkdirSync(join(runDir, '.removing-not-an-id'), { recursive: true });
  const r = new BackgroundRemovals(logger);
  r.sweepOnce(runDir);
  await r.settle();
  assert.not.ok(existsSync(left), 'the leftover is deleted');
  assert.equal(readdirSync(runDir).sort(), ['.removing-not-an-id', 'containers'], 'nothing else is touched');
  const again = tree(join(runDir, `.removing-${'d'.repeat(64)}`));
  r.sweepOnce(runDir);
  assert.is(r.size, 0, 'a run dir is swept once per daemon');
  rmSync(again, { recursive: true });
});

test.run();
