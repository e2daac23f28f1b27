// held-session.ts: the tag a held session carries is validated (schemas/held-session.schema.json),
// and the backing journal replays to the ids still open.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import {
  BackingJournal,
  COMPACT_MIN,
  decodeHeldSession,
  encodeHeldSession,
} from '../../src/daemon/held-session.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

test('a tag round-trips; a tag that is not one is refused', () => {
  const tag = {
    v: 1 as const,
    container: 'c1',
    bundle: '/b',
    rootfs: '/b/rootfs',
    readonly: false,
    image: DIGEST,
    index: DIGEST,
    store: '/s',
    placeholders: [{ path: '/proc', type: 'dir' as const }],
    since: new Date(0).toISOString(),
  };
  assert.equal(decodeHeldSession(encodeHeldSession(tag), 'n'), tag);
  assert.throws(() => decodeHeldSession('{"v":2}', 'n'), /held session n/);
  assert.throws(() => decodeHeldSession(JSON.stringify({ ...tag, image: 'sha256:x' }), 'n'));
  assert.throws(() => decodeHeldSession('not json', 'n'));
});

test('the journal replays to the backing ids left open, skipping junk', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-journal-'));
  try {
    const j = new BackingJournal(dir, 'n', true);
    j.record(5, 1, true);
    j.record(6, 2, true);
    j.record(5, 1, false);
    j.record(7, 3, true);
    j.record(5, 4, true);
    j.close();
    assert.equal([...BackingJournal.replay(dir, 'n')].sort(), [
      [5, 4],
      [6, 2],
      [7, 3],
    ]);
    // A second writer appends (an adopting daemon); junk lines are skipped.
    writeFileSync(join(dir, 'n.backing'), '+x y\n-6 9\n+8 5', { flag: 'a' });
    const again = new BackingJournal(dir, 'n', false);
    again.record(6, 2, false);
    assert.equal([...BackingJournal.replay(dir, 'n')].sort(), [
      [5, 4],
      [7, 3],
      [8, 5],
    ]);
    again.remove();
    assert.equal([...BackingJournal.replay(dir, 'n')], [], 'removed: nothing to replay');
    // fresh: a journal a dead session left is emptied.
    new BackingJournal(dir, 'm', false).record(1, 1, true);
    new BackingJournal(dir, 'm', true).close();
    assert.equal([...BackingJournal.replay(dir, 'm')], []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the journal stays bounded: compacted when an adopting daemon opens it and as ids open and close', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-journal-'));
  const file = join(dir, 'n.backing');
  const lines = () => readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
  try {
    const j = new BackingJournal(dir, 'n', true);
    // 100 files stay open; one file is opened and closed over and over.
    for (let i = 0; i < 100; i++) j.record(1000 + i, i + 1, true);
    for (let i = 0; i < 50_000; i++) {
      j.record(7, 500 + (i % 3), true);
      j.record(7, 500 + (i % 3), false);
    }
    assert.ok(lines() <= COMPACT_MIN, `the file stays bounded: ${lines()} lines`);
    assert.is(lines(), j.size);
    const want = [...Array(100).keys()].map((i) => [1000 + i, i + 1]);
    assert.equal(
      [...BackingJournal.replay(dir, 'n')].sort((a, b) => a[0] - b[0]),
      want,
    );
    // A daemon killed mid-line; the next one adopts: the file is rewritten to the open ids.
    j.record(8, 9, true);
    writeFileSync(file, '+9', { flag: 'a' });
    j.close();
    const adopted = new BackingJournal(dir, 'n', false);
    assert.is(lines(), 101, 'compacted on adoption (the torn line dropped)');
    assert.equal(adopted.openIds().get(8), 9);
    adopted.record(10, 11, true);
    assert.equal(BackingJournal.replay(dir, 'n').get(10), 11, 'appends go to the rewritten file');
    adopted.remove();
    assert.equal(readdirSync(dir), [], 'no temp file is left');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
