import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LookupCounts } from '../../../src/mount/fs/lookup-counts.js';

for (const [kind, id] of [
  ['small', 7],
  ['huge', 2 ** 40],
] as const) {
  test(`${kind} node ids: lookups add up, FORGET takes them off and says when the last went`, () => {
    const c = new LookupCounts();
    assert.is(c.get(id), 0);
    assert.is(c.forget(id, 1), false); // unknown: nothing forgotten
    c.add(id);
    c.add(id);
    c.add(id);
    assert.is(c.get(id), 3);
    assert.is(c.forget(id, 2), false);
    assert.is(c.get(id), 1);
    assert.is(c.forget(id, 5), true); // more than held: forgotten all the same
    assert.is(c.get(id), 0);
    assert.is(c.forget(id, 1), false);
  });
}

test('clear forgets every node', () => {
  const c = new LookupCounts();
  c.add(1);
  c.add(2 ** 40);
  c.clear();
  assert.is(c.get(1), 0);
  assert.is(c.get(2 ** 40), 0);
});

test.run();
