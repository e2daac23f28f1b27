import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataLossError } from '../../src/errors.js';
import { encodeTreeIndex, newDir, type TreeNode } from '../../src/store/tree-index-encode.js';
import {
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
  S_IFCHR,
  decodeDev,
  encodeDev,
} from '../../src/store/tree-index-format.js';
import { TreeIndex } from '../../src/store/tree-index.js';

const DIGEST = 'ab'.repeat(32);

function sample(): TreeNode {
  const root = newDir(0o755, 0, 0, 1000);
  const etc = newDir(0o755, 0, 0, 1001);
  const passwd: TreeNode = {
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtimeSec: 5,
    inline: Buffer.from('root:x:0:0\n'),
  };
  const big: TreeNode = {
    type: 'file',
    mode: 0o4755,
    uid: 1,
    gid: 2,
    mtimeSec: 6,
    mtimeNsec: 7,
    size: 1 << 20,
    digest: DIGEST,
  };
  big.xattrs = new Map([
    ['security.capability', Buffer.from([1, 2, 3])],
    ['user.a', Buffer.from('b')],
  ]);
  etc.children!.set('passwd', passwd);
  root.children!.set('etc', etc);
  root.children!.set('bin', newDir());
  root.children!.get('bin')!.children!.set('big', big);
  root.children!.get('bin')!.children!.set('hard', big);
  root.children!.set('link', {
    type: 'symlink',
    mode: 0o777,
    uid: 0,
    gid: 0,
    mtimeSec: 0,
    target: 'etc/passwd',
  });
  root.children!.set('null', {
    type: 'chardev',
    mode: 0o666,
    uid: 0,
    gid: 0,
    mtimeSec: 0,
    rdevMajor: 1,
    rdevMinor: 3,
  });
  return root;
}

test('round trip: lookup, attrs, content, links', () => {
  const idx = TreeIndex.decode(encodeTreeIndex(sample()));
  assert.is(idx.inodeCount, 7);
  const root = idx.attr(1);
  assert.is(root.mode, S_IFDIR | 0o755);
  assert.is(root.nlink, 4); // ., .., etc, bin
  assert.is(idx.parent(1), 1);
  const etc = idx.lookup(1, 'etc');
  assert.ok(etc > 1);
  assert.is(idx.parent(etc), 1);
  const passwd = idx.lookup(etc, 'passwd');
  assert.equal(idx.content(passwd), { kind: 'inline', data: Buffer.from('root:x:0:0\n') });
  assert.is(idx.attr(passwd).size, 11);
  const big = idx.resolve('/bin/big');
  assert.is(idx.resolve('bin/hard'), big, 'hard link is the same inode');
  const a = idx.attr(big);
  assert.is(a.mode, S_IFREG | 0o4755);
  assert.is(a.nlink, 2);
  assert.is(a.size, 1 << 20);
  assert.is(a.mtimeNsec, 7);
  assert.equal(idx.content(big), { kind: 'object', digest: DIGEST });
  assert.equal(idx.getxattr(big, 'user.a'), Buffer.from('b'));
  assert.equal(
    idx.xattrs(big).map((x) => x.name),
    ['security.capability', 'user.a'],
  );
  const link = idx.lookup(1, 'link');
  assert.is(idx.attr(link).mode, S_IFLNK | 0o777);
  assert.is(idx.readlink(link).toString(), 'etc/passwd');
  const dev = idx.attr(idx.lookup(1, 'null'));
  assert.is(dev.mode, S_IFCHR | 0o666);
  assert.equal(decodeDev(dev.rdev), { major: 1, minor: 3 });
  assert.is(idx.lookup(1, 'nope'), 0);
  assert.is(idx.lookup(passwd, 'x'), 0, 'lookup in a file finds nothing');
  assert.is(idx.objectTotal, 1);
});

test('entries are sorted by name bytes', () => {
  const root = newDir();
  for (const n of ['b', 'a', 'Z', 'é', 'aa']) root.children!.set(n, newDir());
  const idx = TreeIndex.decode(encodeTreeIndex(root));
  const names = Array.from({ length: idx.entryCount(1) }, (_, i) => idx.entry(1, i)!.name.toString());
  assert.equal(names, ['Z', 'a', 'aa', 'b', 'é']);
  for (const n of names) assert.ok(idx.lookup(1, n) > 0, n);
});

test('encoding is deterministic', () => {
  assert.equal(encodeTreeIndex(sample()), encodeTreeIndex(sample()));
});

test('large device numbers round-trip', () => {
  assert.equal(decodeDev(encodeDev(259, 70000)), { major: 259, minor: 70000 });
});

test('corrupt input is refused with DataLossError, never an out-of-bounds read', () => {
  const good = encodeTreeIndex(sample());
  assert.throws(
    () => TreeIndex.decode(good.subarray(0, 10)),
    (e: unknown) => e instanceof DataLossError,
  );
  assert.throws(
    () => TreeIndex.decode(good.subarray(0, good.length - 1)),
    (e: unknown) => e instanceof DataLossError,
  );
  const bad = Buffer.from(good);
  bad.writeUInt32LE(0xfffff, 64 + 40); // root's first dirent
  assert.throws(
    () => TreeIndex.decode(bad),
    (e: unknown) => e instanceof DataLossError,
  );
  const badMagic = Buffer.from(good);
  badMagic[0] = 0;
  assert.throws(() => TreeIndex.decode(badMagic), /bad magic/);
});

test('unknown inode numbers throw RangeError', () => {
  const idx = TreeIndex.decode(encodeTreeIndex(sample()));
  assert.throws(() => idx.attr(0), RangeError);
  assert.throws(() => idx.attr(99), RangeError);
  assert.not.ok(idx.has(99));
});

test('names come before inline contents in the pool (a walk touches few pages of a mapped index)', () => {
  const root = newDir();
  const content = Buffer.from('CONTENT-'.repeat(64));
  root.children!.set('a-file', { type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeSec: 0, inline: content });
  const sub = newDir();
  sub.children!.set('deeper-name', newDir()); // placed after a-file's content in plain visit order
  root.children!.set('sub', sub);
  const buf = encodeTreeIndex(root);
  assert.ok(buf.indexOf('deeper-name') < buf.indexOf(content), 'every name precedes the contents');
  const idx = TreeIndex.decode(buf);
  assert.equal(idx.content(idx.lookup(1, 'a-file')), { kind: 'inline', data: content });
});

test.run();
