// The addon's object writer and pool SHA-256 (native/src/objects.c), against node:crypto and the
// store's own object naming (src/store/layout.ts).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { native } from '../../src/native-addon.js';
import { objectPath, objectsDir } from '../../src/store/layout.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-objects-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test(
  'objectWrite: a missing object is hashed and written to the temp file (state 1), mode as asked',
  withDir(async (dir) => {
    const parts = [Buffer.from('hello '), Buffer.alloc(0), Buffer.from('world')];
    const temp = join(dir, 't1');
    const [hex, state] = await native.objectWrite(parts, objectsDir(dir), temp, 0o444);
    assert.is(hex, sha(Buffer.from('hello world')));
    assert.is(state, 1);
    assert.is(readFileSync(temp, 'utf8'), 'hello world');
    assert.is(statSync(temp).mode & 0o777, 0o444);
  }),
);

test(
  'objectWrite: present with its size (state 0) writes nothing; another size is corrupt (state 2)',
  withDir(async (dir) => {
    const data = Buffer.from('content');
    const dest = objectPath(dir, sha(data));
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, data);
    const [, state] = await native.objectWrite([data], objectsDir(dir), join(dir, 't0'), 0o444);
    assert.is(state, 0, 'the name the addon builds is objectPath()');
    assert.not.ok(existsSync(join(dir, 't0')));
    writeFileSync(dest, 'short');
    const [, again] = await native.objectWrite([data], objectsDir(dir), join(dir, 't2'), 0o444);
    assert.is(again, 2);
    assert.equal(readFileSync(join(dir, 't2')), data);
  }),
);

test(
  'objectWrite: more pieces than IOV_MAX, and a taken temp name (EEXIST, nothing replaced)',
  withDir(async (dir) => {
    const parts = Array.from({ length: 3000 }, (_, i) => Buffer.from(`piece ${i};`));
    const all = Buffer.concat(parts);
    const [hex] = await native.objectWrite(parts, objectsDir(dir), join(dir, 'big'), 0o444);
    assert.is(hex, sha(all));
    assert.equal(readFileSync(join(dir, 'big')), all);
    writeFileSync(join(dir, 'taken'), 'mine');
    try {
      await native.objectWrite([Buffer.from('x')], objectsDir(dir), join(dir, 'taken'), 0o444);
      assert.unreachable('a taken temp name must fail');
    } catch (err) {
      assert.is((err as NodeJS.ErrnoException).code, 'EEXIST');
      assert.is((err as NodeJS.ErrnoException).syscall, 'open');
    }
    assert.is(readFileSync(join(dir, 'taken'), 'utf8'), 'mine');
    assert.throws(() => native.objectWrite('x' as unknown as Buffer[], dir, join(dir, 'y'), 0o444), /array/);
  }),
);

test('sha256Update/sha256Digest: the digest of every piece in order; one update at a time', async () => {
  const h = native.sha256Create();
  const pieces = Array.from({ length: 50 }, (_, i) => Buffer.alloc(10_000 + i, i));
  for (let i = 0; i < pieces.length; i += 7) await native.sha256Update(h, pieces.slice(i, i + 7));
  assert.is(native.sha256Digest(h), sha(Buffer.concat(pieces)));
  assert.throws(() => native.sha256Digest(h), /EBUSY/, 'a spent handle');
  const g = native.sha256Create();
  const running = native.sha256Update(g, [Buffer.alloc(1 << 20)]);
  assert.throws(() => native.sha256Update(g, [Buffer.alloc(1)]), /EBUSY/);
  assert.throws(() => native.sha256Digest(g), /EBUSY/);
  await running;
  assert.is(native.sha256Digest(g), sha(Buffer.alloc(1 << 20)));
  assert.is(native.sha256Digest(native.sha256Create()), sha(Buffer.alloc(0)));
});

test.run();
