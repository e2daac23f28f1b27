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

test('deletes in the background; settle waits for every deletion and removes the trash dir', async () => {
  const trash = join(dir, 'sock.removing');
  const r = new BackgroundRemovals(logger, trash);
  const a = tree(join(trash, 'a'.repeat(64)));
  const b = tree(join(trash, 'b'.repeat(64)));
  r.add(a);
  r.add(b);
  assert.is(r.size, 2);
  await r.settle();
  assert.is(r.size, 0);
  assert.not.ok(existsSync(a) || existsSync(b), 'both deleted');
  assert.not.ok(existsSync(trash), 'the trash dir is gone');
  assert.equal(warnings, []);
});

test('what an earlier daemon left in the trash dir is deleted by the next one', async () => {
  const trash = join(dir, 'sock2.removing');
  const left = tree(join(trash, 'c'.repeat(64)));
  const r = new BackgroundRemovals(logger, trash);
  assert.is(r.size, 1);
  await r.settle();
  assert.not.ok(existsSync(left), 'the leftover is deleted');
  assert.equal(readdirSync(dir).includes('sock2.removing'), false);
});

test.run();
