import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildPlaceholders } from '../../../src/mount/fs/placeholders.js';
import { InvalidArgumentError } from '../../../src/errors.js';
import { encodeTreeIndex, newDir } from '../../../src/store/tree-index-encode.js';
import { TreeIndex } from '../../../src/store/tree-index.js';

function index(): TreeIndex {
  const root = newDir();
  const etc = newDir();
  etc.children!.set('hosts', {
    type: 'file',
    mode: 0o600,
    uid: 0,
    gid: 0,
    mtimeSec: 0,
    inline: Buffer.from('x'),
  });
  root.children!.set('etc', etc);
  root.children!.set('proc', {
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtimeSec: 0,
    inline: Buffer.alloc(0),
  });
  return TreeIndex.decode(encodeTreeIndex(root));
}

test('existing entries of the right type win; parents are created; inos follow the index', () => {
  const ix = index();
  const t = buildPlaceholders(ix, [
    { path: '/etc/hosts', type: 'file' },
    { path: 'dev/pts', type: 'dir' },
    { path: '/etc/resolv.conf', type: 'file', mode: 0o600 },
  ]);
  assert.is(t.nodes.size, 3);
  const dev = t.children.get(1)!.get('dev')!;
  assert.is(dev, ix.inodeCount + 1);
  assert.is(t.nodes.get(dev)!.mode, 0o040755);
  const pts = t.children.get(dev)!.get('pts')!;
  assert.is(t.nodes.get(pts)!.parent, dev);
  const etc = ix.resolve('/etc');
  assert.is(t.nodes.get(t.children.get(etc)!.get('resolv.conf')!)!.mode, 0o100600);
  assert.is(t.children.get(etc)!.has('hosts'), false);
  assert.equal(t.extra.get(1)!.map(String), ['dev']);
});

test('an image entry of the wrong type is shadowed, not listed twice', () => {
  const ix = index();
  const t = buildPlaceholders(ix, [{ path: '/proc', type: 'dir' }]);
  const proc = t.children.get(1)!.get('proc')!;
  assert.is(t.nodes.get(proc)!.mode & 0o170000, 0o040000);
  assert.is(t.extra.get(1), undefined);
});

test('bad paths and conflicting placeholders are refused', () => {
  const ix = index();
  assert.throws(
    () => buildPlaceholders(ix, [{ path: '/', type: 'dir' }]),
    (e: unknown) => e instanceof InvalidArgumentError,
  );
  assert.throws(
    () => buildPlaceholders(ix, [{ path: '/a/../b', type: 'dir' }]),
    (e: unknown) => e instanceof InvalidArgumentError,
  );
  assert.throws(
    () =>
      buildPlaceholders(ix, [
        { path: '/x', type: 'file' },
        { path: '/x/y', type: 'dir' },
      ]),
    /conflicts/,
  );
});

test.run();
