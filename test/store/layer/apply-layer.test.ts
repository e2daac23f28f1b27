import { Readable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InvalidArgumentError } from '../../../src/errors.js';
import { DEFAULT_INLINE_MAX, applyLayer } from '../../../src/store/layer/apply-layer.js';
import { encodeTreeIndex, newDir, type TreeNode } from '../../../src/store/tree-index-encode.js';
import { S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, decodeDev } from '../../../src/store/tree-index-format.js';
import { TreeIndex } from '../../../src/store/tree-index.js';
import { MemorySink, makeTar, patchBytes, type EntrySpec } from './helpers.js';

async function build(
  layers: EntrySpec[][],
  inlineMax = 16,
): Promise<{ ix: TreeIndex; sink: MemorySink; root: TreeNode }> {
  const root = newDir();
  const sink = new MemorySink();
  for (const [i, l] of layers.entries()) {
    await applyLayer(root, Readable.from([await makeTar(l)]), sink, { inlineMax, layer: `sha256:layer${i}` });
  }
  return { ix: TreeIndex.decode(encodeTreeIndex(root)), sink, root };
}

const names = (ix: TreeIndex, path: string) => {
  const ino = ix.resolve(path);
  return Array.from({ length: ix.entryCount(ino) }, (_, i) => ix.entry(ino, i)!.name.toString());
};

test('files, dirs, symlinks, devices, fifos, modes and owners land in the tree', async () => {
  const { ix, sink } = await build([
    [
      { name: './etc/', type: 'directory', mode: 0o755 },
      { name: './etc/hostname', body: 'box\n', uid: 7, gid: 8 },
      { name: '/usr/bin/su', body: Buffer.alloc(5000, 1), mode: 0o4755 },
      { name: 'tmp/', type: 'directory', mode: 0o1777 },
      { name: 'sh', type: 'symlink', linkname: '/usr/bin/busybox' },
      { name: 'dev/null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
      { name: 'run/fifo', type: 'fifo', mode: 0o600 },
    ],
  ]);
  assert.is(ix.content(ix.resolve('etc/hostname')).kind, 'inline');
  assert.is(ix.attr(ix.resolve('etc/hostname')).uid, 7);
  assert.is(ix.attr(ix.resolve('etc/hostname')).gid, 8);
  const su = ix.resolve('usr/bin/su');
  assert.is(ix.attr(su).mode & 0o7777, 0o4755);
  const c = ix.content(su);
  assert.ok(c.kind === 'object' && sink.objects.get(c.digest)?.equals(Buffer.alloc(5000, 1)));
  assert.is(ix.attr(ix.resolve('usr')).mode, S_IFDIR | 0o755, 'implied parent: 0755 directory');
  assert.is(ix.attr(ix.resolve('tmp')).mode, S_IFDIR | 0o1777);
  assert.is(ix.attr(ix.resolve('sh')).mode & 0o170000, S_IFLNK);
  assert.is(ix.readlink(ix.resolve('sh')).toString(), '/usr/bin/busybox');
  const dev = ix.attr(ix.resolve('dev/null'));
  assert.is(dev.mode, S_IFCHR | 0o666);
  assert.equal(decodeDev(dev.rdev), { major: 1, minor: 3 });
  assert.is(ix.attr(ix.resolve('run/fifo')).mode, S_IFIFO | 0o600);
});

test('whiteouts remove lower entries; opaque dirs hide lower children but keep the same layer', async () => {
  const { ix } = await build([
    [
      { name: 'a/old', body: 'x' },
      { name: 'a/keep', body: 'y' },
      { name: 'b/sub/deep', body: 'z' },
      { name: 'c', body: 'gone' },
    ],
    [
      { name: 'b/new', body: 'n' },
      { name: 'b/sub/', type: 'directory' },
      { name: 'b/.wh..wh..opq', body: '' },
      { name: 'a/.wh.old', body: '' },
      { name: '.wh.c', body: '' },
      { name: 'd', body: 'same layer' },
      { name: '.wh.d', body: '' },
    ],
  ]);
  assert.equal(names(ix, 'a'), ['keep']);
  assert.equal(names(ix, 'b'), ['new', 'sub']);
  assert.equal(names(ix, 'b/sub'), [], 'lower children under an opaque dir are hidden');
  assert.is(ix.resolve('c'), 0);
  assert.ok(ix.resolve('d') > 0, 'a whiteout does not hide an entry of its own layer');
  assert.is(ix.resolve('.wh.c'), 0, 'whiteout markers never appear');
});

test('hard links share one inode; a directory entry keeps its children; a file replaces a dir', async () => {
  const { ix, root } = await build([
    [
      { name: 'bin/busybox', body: Buffer.alloc(100, 2), mode: 0o755 },
      { name: 'bin/ls', type: 'link', linkname: 'bin/busybox' },
      { name: 'opt/x/y', body: 'y' },
      { name: 'srv/z', body: 'z' },
    ],
    [
      { name: 'bin/', type: 'directory', mode: 0o700, uid: 3 },
      { name: 'opt', body: 'now a file' },
    ],
  ]);
  assert.is(ix.resolve('bin/ls'), ix.resolve('bin/busybox'));
  assert.is(ix.attr(ix.resolve('bin/ls')).nlink, 2);
  assert.equal(names(ix, 'bin'), ['busybox', 'ls']);
  assert.is(ix.attr(ix.resolve('bin')).mode, S_IFDIR | 0o700);
  assert.is(ix.attr(ix.resolve('bin')).uid, 3);
  assert.is(root.children!.get('opt')!.type, 'file');
  assert.is(ix.resolve('opt/x'), 0);
});

test('long names (>100, >255), binary xattrs and fractional PAX mtimes survive', async () => {
  const long = 'd'.repeat(120) + '/' + 'f'.repeat(200) + '/' + 'n'.repeat(250);
  const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xff, 0xfe, 0x80, 0x00, 0xc3, 0x28]);
  const placeholder = 'P'.repeat(cap.length);
  const tarBuf = patchBytes(
    await makeTar([
      { name: long, body: 'long' },
      {
        name: 'bin/ping',
        body: Buffer.alloc(64, 3),
        pax: {
          'SCHILY.xattr.security.capability': placeholder,
          'SCHILY.xattr.user.t': 'text',
          mtime: '1700000000.123456789',
        },
      },
    ]),
    placeholder,
    cap,
  );
  const root = newDir();
  await applyLayer(root, Readable.from([tarBuf]), new MemorySink(), { inlineMax: 0 });
  const ix = TreeIndex.decode(encodeTreeIndex(root));
  assert.ok(ix.resolve(long) > 0);
  const ping = ix.resolve('bin/ping');
  assert.ok(ix.getxattr(ping, 'security.capability')?.equals(cap));
  assert.is(ix.getxattr(ping, 'user.t')?.toString(), 'text');
  assert.is(ix.attr(ping).mtimeSec, 1700000000);
  assert.is(ix.attr(ping).mtimeNsec, 123456789);
});

async function refuse(entries: EntrySpec[], lower: EntrySpec[] = []): Promise<InvalidArgumentError> {
  const root = newDir();
  if (lower.length) await applyLayer(root, Readable.from([await makeTar(lower)]), new MemorySink());
  try {
    await applyLayer(root, Readable.from([await makeTar(entries)]), new MemorySink(), {
      layer: 'sha256:bad',
    });
  } catch (err) {
    assert.instance(err, InvalidArgumentError);
    assert.match((err as Error).message, 'sha256:bad');
    return err as InvalidArgumentError;
  }
  throw new Error('expected a refusal');
}

test('refuses entries that escape the root or go through symlinks', async () => {
  assert.match((await refuse([{ name: '../evil', body: 'x' }])).message, '../evil');
  assert.match((await refuse([{ name: 'a/../../evil', body: 'x' }])).message, 'a/../../evil');
  const e = await refuse(
    [{ name: 'etc/passwd', body: 'x' }],
    [{ name: 'etc', type: 'symlink', linkname: '/tmp' }],
  );
  assert.match(e.message, 'etc/passwd');
  assert.match(e.message, 'symlink');
});

test('refuses bad hard links', async () => {
  assert.match((await refuse([{ name: 'l', type: 'link', linkname: 'missing' }])).message, 'missing target');
  assert.match(
    (await refuse([{ name: 'l', type: 'link', linkname: '../../etc/shadow' }])).message,
    'escapes',
  );
  assert.match(
    (
      await refuse([
        { name: 'd/', type: 'directory' },
        { name: 'l', type: 'link', linkname: 'd' },
      ])
    ).message,
    'directory',
  );
});

test('the tree keeps the same TreeNode for a hard link target across layers', async () => {
  const { root } = await build([[{ name: 'a', body: 'abc' }], [{ name: 'b', type: 'link', linkname: 'a' }]]);
  assert.is(root.children!.get('a'), root.children!.get('b'));
});

test('files up to DEFAULT_INLINE_MAX bytes stay inline; larger ones become objects', async () => {
  const root = newDir();
  const sink = new MemorySink();
  const small = Buffer.alloc(DEFAULT_INLINE_MAX, 1);
  const big = Buffer.alloc(DEFAULT_INLINE_MAX + 1, 2);
  await applyLayer(
    root,
    Readable.from([
      await makeTar([
        { name: 'small', body: small },
        { name: 'big', body: big },
      ]),
    ]),
    sink,
  );
  assert.equal(root.children!.get('small')!.inline, small);
  assert.is(root.children!.get('big')!.inline, undefined);
  assert.equal([...sink.objects.values()], [big]);
});

test('a big layer through a slow sink: backpressure holds and no listener piles up', async () => {
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  try {
    // 400 files of 64 KiB: several MiB of tar, far beyond every stream buffer on the way.
    const entries: EntrySpec[] = Array.from({ length: 400 }, (_, i) => {
      const body = Buffer.alloc(64 << 10);
      body.writeUInt32LE(i); // distinct contents: 400 objects
      return { name: `d/f${i}`, body };
    });
    const tarBuf = await makeTar(entries);
    const slow = new MemorySink();
    const write = slow.write.bind(slow);
    slow.write = async (content, size) => {
      await new Promise((r) => setTimeout(r, 1));
      return write(content, size);
    };
    const chunks = Array.from({ length: Math.ceil(tarBuf.length / 16384) }, (_, i) =>
      tarBuf.subarray(i * 16384, (i + 1) * 16384),
    );
    const root = newDir();
    const stats = await applyLayer(root, Readable.from(chunks), slow, { inlineMax: 0 });
    assert.is(stats.files, 400);
    assert.is(slow.objects.size, 400);
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    assert.equal(
      warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message),
      [],
    );
  } finally {
    process.off('warning', onWarning);
  }
});

test.run();
