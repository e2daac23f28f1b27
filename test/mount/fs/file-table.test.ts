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

test.run();
