// The native fast path (native/src/fast-path.c) answers byte for byte as the TypeScript server
// does: for every node of the test images (busybox, Debian, and a hand-built index with xattrs,
// placeholders, devices, hard links, odd times), every request it takes — GETATTR, LOOKUP of every
// name and of a missing one, READLINK, READDIR and READDIRPLUS at every offset with large and
// tight buffers, GETXATTR and LISTXATTR with every size rule — gets the same reply from both, and
// what it does not take (null) is left to TypeScript.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { objectPath } from '../../../src/store/layout.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native, type FastPathHandle } from '../../../src/native-addon.js';
import * as C from '../../../src/mount/fuse/constants.js';
import type { FuseProtocol } from '../../../src/mount/fuse/protocol.js';
import { encodeGetattrIn } from '../../../src/mount/fuse/wire/attr.js';
import { encodeInitIn } from '../../../src/mount/fuse/wire/init.js';
import { encodeOpenIn, encodeReadIn, encodeReleaseIn } from '../../../src/mount/fuse/wire/open.js';
import { STATELESS_FH, type FilesystemBridge } from '../../../src/mount/fs/bridge.js';
import { treeIndexPath } from '../../../src/store/layout.js';
import { encodeGetxattrIn } from '../../../src/mount/fuse/wire/xattr.js';
import { FdCache } from '../../../src/mount/fs/fd-cache.js';
import { createImageHandler } from '../../../src/mount/fs/image-handler.js';
import type { PlaceholderSpec } from '../../../src/mount/fs/placeholders.js';
import { loadTreeIndex, resolveImageRecord } from '../../../src/store/records.js';
import { encodeTreeIndex, newDir } from '../../../src/store/tree-index-encode.js';
import { S_IFDIR, S_IFMT, S_IFREG } from '../../../src/store/tree-index-format.js';
import { TreeIndex } from '../../../src/store/tree-index.js';
import { busyboxImage, debianImage } from '../../fixtures/images.js';
import { name, request } from '../fuse/helpers.js';
import { fdSnapshot, fdsLeftSince, tempStore, type TempStore } from '../real-mount.js';
import { createDetachedMount } from '../../../src/mount/detached.js';
import { prepareImage, releaseWhenEnded } from '../../../src/mount/serve.js';
import { run } from '../../fixtures/run.js';
import { closeSync, openSync } from 'node:fs';

let store: TempStore;
const scratch = mkdtempSync(join(tmpdir(), 'strata-fast-path-'));
const cache = new FdCache(4);

test.before(async () => {
  store = await tempStore({ busybox: await busyboxImage(), debian: await debianImage() });
});

test.after(async () => {
  await store.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

const PLACEHOLDERS: PlaceholderSpec[] = [
  { path: '/proc', type: 'dir' },
  { path: '/dev/pts', type: 'dir' },
  { path: '/etc/hosts', type: 'file' },
  { path: '/etc/passwd/shadowed', type: 'dir' },
];

async function handlerFor(
  index: TreeIndex,
  placeholders: PlaceholderSpec[] = PLACEHOLDERS,
  indexPath?: string,
) {
  const p = createImageHandler({ index, storeRoot: scratch, placeholders, fdCache: cache, indexPath });
  const flags = C.FUSE_ASYNC_READ | C.FUSE_DO_READDIRPLUS | C.FUSE_MAX_PAGES | C.FUSE_INIT_EXT;
  await p.handleRequest(request(C.FUSE_INIT, encodeInitIn({ major: 7, minor: 45, max_readahead: 0, flags })));
  const fast = p.nativeFastPath();
  assert.ok(fast, 'an image handler has a fast path');
  return { p, fast: fast.handle };
}

interface Tally {
  answered: number;
  deferred: number;
}

/** One request through both paths: the native reply, when there is one, equals TypeScript's. */
async function same(
  p: FuseProtocol,
  fast: FastPathHandle,
  req: Buffer,
  what: string,
  t: Tally,
): Promise<void> {
  const mine = native.fastPathAnswer(fast, req);
  if (mine === null) {
    t.deferred++;
    return;
  }
  t.answered++;
  const theirs = await p.handleRequest(req);
  assert.ok(theirs, `${what}: TypeScript answers`);
  if (!mine.equals(theirs)) {
    assert.fixture(
      mine.toString('hex'),
      theirs.toString('hex'),
      `${what}: native and TypeScript replies differ`,
    );
  }
}

const readIn = (offset: number, size: number) =>
  encodeReadIn({ fh: 0, offset, size, read_flags: 0, lock_owner: 0n, flags: 0 });

/** Every request kind for every node of the index, and the placeholder nodes above it. */
async function compareAll(
  index: TreeIndex,
  placeholders = PLACEHOLDERS,
  xattrNames: string[] = [],
  indexPath?: string,
) {
  const { p, fast } = await handlerFor(index, placeholders, indexPath);
  const t: Tally = { answered: 0, deferred: 0 };
  const last = index.inodeCount + placeholders.length + 3;
  for (let ino = 0; ino <= last; ino++) {
    const o = { nodeid: ino };
    await same(
      p,
      fast,
      request(C.FUSE_GETATTR, encodeGetattrIn({ getattr_flags: 0, fh: 0n }), o),
      `GETATTR ${ino}`,
      t,
    );
    await same(p, fast, request(C.FUSE_GETATTR, Buffer.alloc(8), o), `short GETATTR ${ino}`, t);
    await same(p, fast, request(C.FUSE_READLINK, Buffer.alloc(0), o), `READLINK ${ino}`, t);
    for (const size of [0, 1, 4096, 65536])
      await same(
        p,
        fast,
        request(C.FUSE_LISTXATTR, encodeGetxattrIn({ size }), o),
        `LISTXATTR ${ino} ${size}`,
        t,
      );
    for (const x of [...xattrNames, 'user.none', 'trusted.overlay.opaque', 'security.capability']) {
      for (const size of [0, 1, 4096]) {
        const body = Buffer.concat([encodeGetxattrIn({ size }), name(x)]);
        await same(p, fast, request(C.FUSE_GETXATTR, body, o), `GETXATTR ${ino} ${x} ${size}`, t);
      }
    }
    await same(
      p,
      fast,
      request(C.FUSE_GETXATTR, Buffer.concat([encodeGetxattrIn({ size: 9 }), Buffer.from('x')]), o),
      `unterminated GETXATTR ${ino}`,
      t,
    );
    await same(p, fast, request(C.FUSE_LOOKUP, name('no-such-name'), o), `LOOKUP ${ino} missing`, t);
    for (const flags of [C.O_RDONLY, 1 /* O_WRONLY */, C.O_RDONLY | C.O_TRUNC])
      await same(
        p,
        fast,
        request(C.FUSE_OPEN, encodeOpenIn({ flags, open_flags: 0 }), o),
        `OPEN ${ino} ${flags}`,
        t,
      );
    const fh = STATELESS_FH + ino;
    for (const [fhx, off, size] of [
      [fh, 0, 4096],
      [fh, 5, 1],
      [fh, 3, 1 << 20],
      [fh, 4096, 10],
      [fh, 2 ** 40, 10],
      [fh + 1, 0, 10],
      [STATELESS_FH - 1, 0, 10],
    ]) {
      const body = encodeReadIn({ fh: fhx, offset: off, size, read_flags: 0, lock_owner: 0n, flags: 0 });
      await same(p, fast, request(C.FUSE_READ, body, o), `READ ${ino} fh ${fhx} @${off}+${size}`, t);
    }
    const rel = encodeReleaseIn({ fh, flags: 0, release_flags: 0, lock_owner: 0n });
    await same(p, fast, request(C.FUSE_RELEASE, rel, o), `RELEASE ${ino}`, t);
    await same(
      p,
      fast,
      request(C.FUSE_LOOKUP, Buffer.from('unterminated'), o),
      `LOOKUP ${ino} unterminated`,
      t,
    );
    if (!index.has(ino) || (index.mode(ino) & S_IFMT) !== S_IFDIR) {
      await same(p, fast, request(C.FUSE_READDIRPLUS, readIn(0, 4096), o), `READDIRPLUS ${ino}`, t);
      continue;
    }
    const count = index.entryCount(ino);
    for (let i = 0; i < count; i++) {
      const n = index.entry(ino, i)!.name;
      await same(
        p,
        fast,
        request(C.FUSE_LOOKUP, Buffer.concat([n, Buffer.alloc(1)]), o),
        `LOOKUP ${ino} ${n}`,
        t,
      );
    }
    for (const op of [C.FUSE_READDIR, C.FUSE_READDIRPLUS]) {
      for (const size of [4096, 300, 32768]) {
        // Continue from where each reply ends, as the kernel does, and from every start near it.
        for (let off = 0; off <= count + 2; off += size === 300 ? 1 : Math.max(1, count >> 2)) {
          await same(
            p,
            fast,
            request(op, readIn(off, size), o),
            `${op === C.FUSE_READDIR ? 'READDIR' : 'READDIRPLUS'} ${ino} @${off}/${size}`,
            t,
          );
        }
      }
    }
  }
  // Opcodes it never takes, and a header that lies about its length.
  await same(p, fast, request(C.FUSE_STATFS, Buffer.alloc(0)), 'STATFS', t);
  const liar = request(C.FUSE_GETATTR, encodeGetattrIn({ getattr_flags: 0, fh: 0n }));
  liar.writeUInt32LE(liar.length + 10, 0);
  assert.is(native.fastPathAnswer(fast, liar), null, 'a header longer than the message goes to TypeScript');
  return t;
}

for (const ref of ['busybox', 'debian']) {
  test(`${ref}: the fast path answers every node as TypeScript does`, async () => {
    const record = await resolveImageRecord(store.root, ref);
    const index = loadTreeIndex(store.root, record);
    // Inline contents from the index file, as a served image reads them.
    const t = await compareAll(index, PLACEHOLDERS, [], treeIndexPath(store.root, record.indexDigest));
    console.log(`    ${ref}: ${t.answered} answered natively, ${t.deferred} left to TypeScript`);
    assert.ok(t.answered > index.inodeCount * 5, 'most requests are answered natively');
  });
}

function handBuilt(): TreeIndex {
  const root = newDir(0o755, 0, 0, 1600000000);
  const etc = newDir(0o755, 0, 0, -5); // before 1970
  etc.children!.set('passwd', {
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtimeSec: 5,
    inline: Buffer.from('root:x:0:0\n'),
  });
  const withX = {
    type: 'file' as const,
    mode: 0o4755,
    uid: 1000,
    gid: 2000,
    mtimeSec: 1700000000,
    mtimeNsec: 123456789,
    inline: Buffer.from('#!/bin/sh\n'),
    xattrs: new Map([
      ['user.note', Buffer.from('hello')],
      ['security.capability', Buffer.from([1, 2, 0, 0, 0, 0x20, 0, 0])],
      ['user.empty', Buffer.alloc(0)],
    ]),
  };
  etc.children!.set('ping', withX);
  etc.children!.set('link-to-ping', withX); // the same node object: a hard link
  etc.children!.set('null', {
    type: 'chardev',
    mode: 0o666,
    uid: 0,
    gid: 0,
    mtimeSec: 1,
    rdevMajor: 1,
    rdevMinor: 3,
  });
  etc.children!.set('sda', {
    type: 'blockdev',
    mode: 0o660,
    uid: 0,
    gid: 6,
    mtimeSec: 1,
    rdevMajor: 8,
    rdevMinor: 300,
  });
  etc.children!.set('fifo', { type: 'fifo', mode: 0o644, uid: 0, gid: 0, mtimeSec: 1 });
  etc.children!.set('sh', {
    type: 'symlink',
    mode: 0o777,
    uid: 0,
    gid: 0,
    mtimeSec: 1,
    target: '/bin/busybox',
  });
  etc.children!.set('empty-link', { type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtimeSec: 1, target: '' });
  etc.children!.set('x'.repeat(255), {
    type: 'file',
    mode: 0o600,
    uid: 0,
    gid: 0,
    mtimeSec: 1,
    inline: Buffer.alloc(0),
  });
  for (let i = 0; i < 120; i++)
    etc.children!.set(`f${String(i).padStart(3, '0')}-${'n'.repeat(i % 40)}`, {
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtimeSec: i,
      inline: Buffer.from([i]),
    });
  root.children!.set('etc', etc);
  root.children!.set('dev', newDir());
  root.children!.set('empty', newDir());
  return TreeIndex.decode(encodeTreeIndex(root));
}

// No index file here: inline contents are copied from the index buffer on both sides.
test('a hand-built index (xattrs, devices, hard links, odd times, placeholders): byte-identical', async () => {
  const t = await compareAll(handBuilt(), PLACEHOLDERS, ['user.note', 'security.capability', 'user.empty']);
  assert.ok(t.answered > 1000, `${t.answered} answered natively`);
  assert.ok(t.deferred > 0, 'placeholders and their directories are left to TypeScript');
});

test('without placeholders every index node is answered natively, and the count says so', async () => {
  const index = handBuilt();
  const { p, fast } = await handlerFor(index, []);
  const before = native.fastPathAnswered(fast);
  for (let ino = 1; ino <= index.inodeCount; ino++) {
    const req = request(C.FUSE_GETATTR, encodeGetattrIn({ getattr_flags: 0, fh: 0n }), { nodeid: ino });
    const mine = native.fastPathAnswer(fast, req);
    assert.ok(mine, `GETATTR ${ino} answered natively`);
    assert.equal(mine, await p.handleRequest(req));
  }
  assert.is(native.fastPathAnswered(fast) - before, index.inodeCount);
});

test('an image without xattrs answers GETXATTR ENOSYS and LISTXATTR an empty list, on both paths', async () => {
  const root = newDir();
  root.children!.set('a', {
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtimeSec: 1,
    inline: Buffer.from('a'),
  });
  const { p, fast } = await handlerFor(TreeIndex.decode(encodeTreeIndex(root)), [
    { path: '/proc', type: 'dir' },
  ]);
  for (const nodeid of [1, 2, 3]) {
    const get = request(
      C.FUSE_GETXATTR,
      Buffer.concat([encodeGetxattrIn({ size: 0 }), name('trusted.overlay.opaque')]),
      { nodeid },
    );
    const ts = await p.handleRequest(get);
    assert.is(ts!.readInt32LE(4), -C.ENOSYS, `TypeScript, node ${nodeid}`);
    const mine = native.fastPathAnswer(fast, get);
    // The root gained /proc and /proc is a placeholder: both are TypeScript's.
    if (nodeid === 2) assert.equal(mine, ts, `native, node ${nodeid}`);
    else assert.is(mine, null, `node ${nodeid} is TypeScript's`);
  }
  const list = request(C.FUSE_LISTXATTR, encodeGetxattrIn({ size: 0 }), { nodeid: 2 });
  assert.equal(native.fastPathAnswer(fast, list), await p.handleRequest(list));
  assert.is((await p.handleRequest(list))!.readInt32LE(4), 0);
  assert.is((await p.handleRequest(list))!.readUInt32LE(16), 0, 'no names');
});

test('passthrough: once TypeScript registered an object file, its OPENs are answered natively, identically', async () => {
  const root = newDir();
  const store2 = mkdtempSync(join(tmpdir(), 'strata-fast-path-obj-'));
  const content = Buffer.alloc(10_000, 7);
  const digest = createHash('sha256').update(content).digest('hex');
  mkdirSync(dirname(objectPath(store2, digest)), { recursive: true });
  writeFileSync(objectPath(store2, digest), content);
  for (const n of ['a', 'b'])
    root.children!.set(n, {
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtimeSec: 1,
      size: content.length,
      digest,
    });
  const index = TreeIndex.decode(encodeTreeIndex(root));
  let next = 7;
  const p = createImageHandler({
    index,
    storeRoot: store2,
    fdCache: cache,
    backing: { open: () => next++, close: () => undefined },
  });
  const flags = C.FUSE_INIT_EXT | C.FUSE_PASSTHROUGH;
  await p.handleRequest(request(C.FUSE_INIT, encodeInitIn({ major: 7, minor: 45, max_readahead: 0, flags })));
  const fast = p.nativeFastPath()!.handle;
  const a = index.resolve('/a');
  const openA = () => request(C.FUSE_OPEN, encodeOpenIn({ flags: 0, open_flags: 0 }), { nodeid: a });
  assert.is(native.fastPathAnswer(fast, openA()), null, 'the first open is TypeScript’s');
  const first = await p.handleRequest(openA());
  assert.is(first!.readUInt32LE(16 + 12), 7, 'backing id 7');
  const again = openA();
  const mine = native.fastPathAnswer(fast, again);
  assert.ok(mine, 'then the fast path answers');
  assert.equal(mine, await p.handleRequest(again));
  assert.is(mine.readUInt32LE(16 + 8), C.FOPEN_PASSTHROUGH | C.FOPEN_NOFLUSH);
  assert.is(
    native.fastPathAnswer(
      fast,
      request(C.FUSE_OPEN, encodeOpenIn({ flags: 0, open_flags: 0 }), { nodeid: index.resolve('/b') }),
    ),
    null,
  );
  // The session's end closes the backings and clears the table: TypeScript's again.
  p.fs.destroy?.();
  assert.is(native.fastPathAnswer(fast, openA()), null);
  rmSync(store2, { recursive: true, force: true });
});

test('object OPENs are left to TypeScript when the fast path cannot register a backing id itself', async () => {
  const root = newDir();
  const store2 = mkdtempSync(join(tmpdir(), 'strata-fast-path-obj-'));
  const content = Buffer.alloc(10_000, 9);
  const digest = createHash('sha256').update(content).digest('hex');
  mkdirSync(dirname(objectPath(store2, digest)), { recursive: true });
  writeFileSync(objectPath(store2, digest), content);
  const file = { type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeSec: 1, size: content.length } as const;
  root.children!.set('here', { ...file, digest });
  root.children!.set('gone', { ...file, digest: createHash('sha256').update('x').digest('hex') });
  const index = TreeIndex.decode(encodeTreeIndex(root));
  const p = createImageHandler({
    index,
    storeRoot: store2,
    fdCache: cache,
    backing: { open: () => 3, close: () => undefined },
  });
  const flags = C.FUSE_INIT_EXT | C.FUSE_PASSTHROUGH;
  await p.handleRequest(request(C.FUSE_INIT, encodeInitIn({ major: 7, minor: 45, max_readahead: 0, flags })));
  const fast = p.nativeFastPath()!.handle;
  const open = (path: string) =>
    request(C.FUSE_OPEN, encodeOpenIn({ flags: 0, open_flags: 0 }), { nodeid: index.resolve(path) });
  const devNull = openSync('/dev/null', 'r');
  try {
    // Not a FUSE device: the ioctl fails (ENOTTY), nothing is published, TypeScript answers.
    assert.is(native.fastPathAnswer(fast, open('/here'), devNull), null, 'refused ioctl');
    // A missing object: TypeScript answers (EIO, with its message).
    assert.is(native.fastPathAnswer(fast, open('/gone'), devNull), null, 'missing object');
    const ts = await p.handleRequest(open('/gone'));
    assert.is(ts!.readInt32LE(4), -C.EIO);
  } finally {
    closeSync(devNull);
  }
  assert.throws(
    () => native.fastPathEnableBacking(fast, join(store2, 'objects'), () => undefined),
    /already enabled/,
    'once per fast path (the bridge enabled it at INIT)',
  );
  assert.throws(() => native.fastPathEnableBacking(fast, '', () => undefined), /objectsDir/);
  assert.throws(
    () => native.fastPathEnableBacking(fast, store2, 1 as unknown as () => void),
    /onBacking must be a function/,
  );
  p.fs.destroy?.();
  rmSync(store2, { recursive: true, force: true });
});

test('fastPathCreate refuses geometry outside the index, and other values than a handle', () => {
  const index = handBuilt();
  const { buffer, ...geometry } = index.encoded;
  const opts = {
    entryTimeout: 1,
    attrTimeout: 1,
    xattrEnosys: false,
    indexFd: -1,
    backingIds: Buffer.alloc(4),
  };
  assert.throws(
    () =>
      native.fastPathCreate(buffer, { ...geometry, poolSize: geometry.poolSize + 1 }, Buffer.alloc(1), opts),
    /outside the index/,
  );
  assert.throws(
    () => native.fastPathCreate(buffer, geometry, 'x' as unknown as Buffer, opts),
    /defer must be a Buffer/,
  );
  assert.throws(
    () => native.fastPathAnswer({} as FastPathHandle, Buffer.alloc(40)),
    /fastPath must be a handle/,
  );
});

for (const [reader, fastPath] of [
  ['poll', true],
  ['thread', true],
  ['poll', false],
] as const) {
  test(`a real mount (${reader} reader, fast path ${fastPath ? 'on' : 'off'}): walk and read every file`, async () => {
    const before = fdSnapshot();
    const prepared = await prepareImage({ storeRoot: store.root, ref: 'busybox', passthrough: true });
    const m = await createDetachedMount({ handler: prepared.handler, reader, fastPath });
    prepared.bindDevice(m.devFd);
    const done = releaseWhenEnded(m.session, prepared);
    try {
      assert.is(m.session.fastPath !== undefined, fastPath);
      // Another process reads: this one's main thread serves the requests that reach JavaScript.
      const root = `/proc/${process.pid}/fd/${m.mountFd}`;
      const { stdout } = await run('sh', [
        '-c',
        'cd "$1" && ls -laR . | wc -l && cat $(find . -type f) | wc -c',
        'sh',
        root,
      ]);
      const [lines, bytes] = stdout.trim().split(/\s+/).map(Number);
      assert.ok(lines > 300 && bytes > 100_000, `listed ${lines} lines, read ${bytes} bytes`);
      if (fastPath) {
        const answered = native.fastPathAnswered(m.session.fastPath!);
        assert.ok(answered > 100, `${answered} requests answered natively`);
      }
    } finally {
      closeSync(m.mountFd);
    }
    assert.equal(await done, { reason: 'unmounted' });
    assert.equal(fdsLeftSince(before), [], 'no fd left (the fast path closed its index fd)');
  });
}

for (const reader of ['thread', 'poll'] as const) {
  test(`a real mount with passthrough (${reader} reader): the fast path registers each object once and reports it`, async () => {
    const before = fdSnapshot();
    const reported: [number, number, boolean][] = [];
    const prepared = await prepareImage({
      storeRoot: store.root,
      ref: 'busybox',
      passthrough: true,
      onBacking: (ino, id, open) => reported.push([ino, id, open]),
    });
    // TypeScript's own registrations, counted: the fast path makes them instead.
    const jsOpen = native.fuseBackingOpen;
    let jsRegistered = 0;
    native.fuseBackingOpen = (devFd, fd) => (jsRegistered++, jsOpen(devFd, fd));
    const m = await createDetachedMount({ handler: prepared.handler, reader, fastPath: true });
    prepared.bindDevice(m.devFd);
    const done = releaseWhenEnded(m.session, prepared);
    try {
      const objects = new Set<number>();
      for (let ino = 1; ino <= prepared.index.inodeCount; ino++)
        if ((prepared.index.mode(ino) & S_IFMT) === S_IFREG && prepared.index.content(ino).kind === 'object')
          objects.add(ino);
      assert.ok(objects.size > 0, 'busybox has object files');
      const root = `/proc/${process.pid}/fd/${m.mountFd}`;
      const readAll = async () => {
        const { stdout } = await run('sh', [
          '-c',
          'cd "$1" && find . -type f -exec cat {} + | wc -c',
          'sh',
          root,
        ]);
        return Number(stdout.trim());
      };
      const bytes = await readAll();
      assert.ok(bytes > 100_000, `read ${bytes} bytes`);
      // The reports come through the event loop.
      for (let i = 0; i < 100 && reported.length < objects.size; i++)
        await new Promise((r) => setTimeout(r, 10));
      assert.is(jsRegistered, 0, 'no backing id registered by TypeScript');
      assert.equal(new Set(reported.map(([ino]) => ino)), objects, 'every object file reported, once');
      assert.is(reported.length, objects.size);
      assert.is(new Set(reported.map(([, id]) => id)).size, objects.size, 'one id per inode');
      assert.ok(reported.every(([, id, open]) => id > 0 && open));
      const bridge = prepared.handler.fs as FilesystemBridge;
      assert.is(bridge.backingCount, objects.size, 'the bridge holds them (and closes them at the end)');
      // Later opens reuse them: same bytes, nothing new registered or reported.
      assert.is(await readAll(), bytes);
      assert.is(reported.length, objects.size);
      assert.is(jsRegistered, 0);
    } finally {
      native.fuseBackingOpen = jsOpen;
      closeSync(m.mountFd);
    }
    assert.equal(await done, { reason: 'unmounted' });
    assert.equal(fdsLeftSince(before), [], 'no fd left (index fd and objects dir closed)');
  });
}

test.run();
