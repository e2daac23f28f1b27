// held-session.ts: the tag a held session carries is validated (schemas/held-session.schema.json),
// and the backing journal replays to the ids still open.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { BackingJournal, decodeHeldSession, encodeHeldSession } from '../../src/daemon/held-session.js';

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

test.run();
