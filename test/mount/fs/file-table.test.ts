import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FileTable } from '../../../src/mount/fs/file-table.js';

test('small and huge file handles are kept, counted, taken once and listed', () => {
  const t = new FileTable<{ ino: number }>();
  const huge = 2 ** 40;
  t.set(3, { ino: 30 });
  t.set(0, { ino: 1 });
  t.set(huge, { ino: 40 });
  assert.is(t.size, 3);
  assert.equal(
    t.entries().sort((a, b) => a[0] - b[0]),
    [
      [0, { ino: 1 }],
      [3, { ino: 30 }],
      [huge, { ino: 40 }],
    ],
  );
  assert.equal(t.take(3), { ino: 30 });
  assert.is(t.take(3), undefined);
  assert.is(t.take(99), undefined);
  assert.equal(t.take(huge), { ino: 40 });
  assert.is(t.size, 1);
});

test('setting a handle again replaces it without counting it twice; clear empties', () => {
  const t = new FileTable<{ ino: number }>();
  t.set(5, { ino: 1 });
  t.set(5, { ino: 2 });
  assert.is(t.size, 1);
  assert.equal(t.take(5), { ino: 2 });
  t.set(7, { ino: 3 });
  t.clear();
  assert.is(t.size, 0);
  assert.equal(t.entries(), []);
});

test('add numbers files from 1, reuses released numbers first and skips ones set() took', () => {
  const t = new FileTable<{ ino: number }>();
  assert.is(t.add({ ino: 10 }), 1);
  assert.is(t.add({ ino: 11 }), 2);
  assert.is(t.add({ ino: 12 }), 3);
  assert.equal(t.take(2), { ino: 11 });
  assert.is(t.get(2), undefined);
  assert.is(t.add({ ino: 13 }), 2);
  assert.equal(t.get(2), { ino: 13 });
  t.take(3);
  t.set(3, { ino: 14 }); // taken again by its number: add must not hand it out
  assert.is(t.add({ ino: 15 }), 4);
  assert.is(t.size, 4);
  assert.is(t.get(0), undefined);
  assert.is(t.get(2 ** 40), undefined);
  assert.is(t.get(1.5), undefined);
  t.clear();
  assert.is(t.add({ ino: 16 }), 1);
});

test.run();
