import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as C from '../../../src/mount/fuse/constants.js';
import type { FuseProtocol } from '../../../src/mount/fuse/protocol.js';
import { decodeAttrOut, decodeEntryOut } from '../../../src/mount/fuse/wire/attr.js';
import { decodeDirentplusList, decodeDirents } from '../../../src/mount/fuse/wire/dir.js';
import { encodeBatchForgetIn, encodeForgetIn } from '../../../src/mount/fuse/wire/forget.js';
import { encodeInitIn } from '../../../src/mount/fuse/wire/init.js';
import { decodeLseekOut, encodeLseekIn } from '../../../src/mount/fuse/wire/lseek.js';
import {
  decodeOpenOut,
  encodeOpenIn,
  encodeReadIn,
  encodeReleaseIn,
} from '../../../src/mount/fuse/wire/open.js';
import { decodeStatfsOut } from '../../../src/mount/fuse/wire/statfs.js';
import { decodeXattrNames, encodeGetxattrIn } from '../../../src/mount/fuse/wire/xattr.js';
import { STATELESS_FH, type FilesystemBridge } from '../../../src/mount/fs/bridge.js';
import { FdCache } from '../../../src/mount/fs/fd-cache.js';
import { createImageHandler } from '../../../src/mount/fs/image-handler.js';
import { objectPath } from '../../../src/store/layout.js';
import { encodeTreeIndex, newDir, type TreeNode } from '../../../src/store/tree-index-encode.js';
import { TreeIndex } from '../../../src/store/tree-index.js';
import { errnoOf, name, reply, request } from '../fuse/helpers.js';

const store = mkdtempSync(join(tmpdir(), 'strata-image-fs-'));
const cache = new FdCache(4);

function object(content: Buffer): string {
  const digest = createHash('sha256').update(content).digest('hex');
  const path = objectPath(store, digest);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  return digest;
}

const BIG = Buffer.alloc(300_000);
for (let i = 0; i < BIG.length; i++) BIG[i] = (i * 7 + (i >> 9)) & 0xff;
const SMALL = Buffer.from('object two\n');

function file(content: Buffer, extra: Partial<TreeNode> = {}): TreeNode {
  return {
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtimeSec: 1700000000,
    size: content.length,
    digest: object(content),
    ...extra,
  };
}

function buildIndex(): TreeIndex {
  const root = newDir(0o755, 0, 0, 1600000000);
  const etc = newDir();
  etc.children!.set('passwd', {
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtimeSec: 5,
    inline: Buffer.from('root:x:0:0\n'),
  });
  const bin = newDir();
  bin.children!.set(
    'big',
    file(BIG, {
      mode: 0o755,
      xattrs: new Map([
        ['user.note', Buffer.from('hello')],
        ['security.capability', Buffer.from([1, 2])],
      ]),
    }),
  );
  bin.children!.set('small', file(SMALL));
  bin.children!.set('sh', { type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtimeSec: 0, target: 'big' });
  const many = newDir();
  for (let i = 0; i < 40; i++) many.children!.set(`entry-${String(i).padStart(2, '0')}`, file(SMALL));
  root.children!.set('etc', etc);
  root.children!.set('bin', bin);
  root.children!.set('many', many);
  // /dev is a symlink in this image: a placeholder directory must shadow it.
  root.children!.set('dev', { type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtimeSec: 0, target: '/tmp' });
  return TreeIndex.decode(encodeTreeIndex(root));
}

const index = buildIndex();
const PLACEHOLDERS = [
  { path: '/proc', type: 'dir' as const },
  { path: '/dev/pts', type: 'dir' as const },
  { path: '/etc/hosts', type: 'file' as const },
  { path: '/etc/passwd', type: 'file' as const },
  { path: '/sys', type: 'dir' as const, mode: 0o555 },
];

async function mount(
  opts: {
    backing?: { open(fd: number): number; close(id: number): void };
    onBacking?: (ino: number, id: number, open: boolean) => void;
  } = {},
) {
  const p = createImageHandler({
    index,
    storeRoot: store,
    placeholders: PLACEHOLDERS,
    fdCache: cache,
    ...opts,
  });
  const flags =
    C.FUSE_ASYNC_READ | C.FUSE_DO_READDIRPLUS | C.FUSE_MAX_PAGES | C.FUSE_INIT_EXT | C.FUSE_PASSTHROUGH;
  assert.is(
    errnoOf(
      await p.handleRequest(
        request(C.FUSE_INIT, encodeInitIn({ major: 7, minor: 45, max_readahead: 1 << 20, flags })),
      ),
    ),
    0,
  );
  return p;
}

const bridgeOf = (p: FuseProtocol) => p.fs as FilesystemBridge;
const lookup = async (p: FuseProtocol, parent: number, n: string) =>
  p.handleRequest(request(C.FUSE_LOOKUP, name(n), { nodeid: parent }));
const entryOf = async (p: FuseProtocol, parent: number, n: string) =>
  decodeEntryOut(reply(await lookup(p, parent, n)).body);
const readIn = (fh: number, offset: number, size: number) =>
  encodeReadIn({ fh, offset, size, read_flags: 0, lock_owner: 0n, flags: 0 });

async function open(p: FuseProtocol, ino: number) {
  return decodeOpenOut(
    reply(
      await p.handleRequest(request(C.FUSE_OPEN, encodeOpenIn({ flags: 0, open_flags: 0 }), { nodeid: ino })),
    ).body,
  );
}
async function read(p: FuseProtocol, ino: number, fh: number, offset: number, size: number) {
  return reply(await p.handleRequest(request(C.FUSE_READ, readIn(fh, offset, size), { nodeid: ino }))).body;
}
async function release(p: FuseProtocol, ino: number, fh: number) {
  return p.handleRequest(
    request(C.FUSE_RELEASE, encodeReleaseIn({ fh, flags: 0, release_flags: 0, lock_owner: 0n }), {
      nodeid: ino,
    }),
  );
}

test('lookup and getattr: node ids are index inodes, attributes come from the index, long timeouts', async () => {
  const p = await mount();
  const bin = await entryOf(p, 1, 'bin');
  assert.is(bin.nodeid, index.resolve('/bin'));
  assert.is(bin.generation, 0);
  assert.is(bin.entry_valid, 86400);
  const big = await entryOf(p, bin.nodeid, 'big');
  assert.is(big.nodeid, index.resolve('/bin/big'));
  assert.is(big.attr.mode, 0o100755);
  assert.is(big.attr.size, BIG.length);
  assert.is(big.attr.blocks, Math.ceil(BIG.length / 512));
  assert.is(big.attr.blksize, 4096);
  assert.is(big.attr.mtime, 1700000000);
  assert.is(big.attr.atime, big.attr.mtime);
  assert.is(big.attr.ctime, big.attr.mtime);
  const root = decodeAttrOut(
    reply(await p.handleRequest(request(C.FUSE_GETATTR, Buffer.alloc(16), { nodeid: 1 }))).body,
  );
  assert.is(root.attr.ino, 1);
  assert.is(root.attr.mode & 0o170000, 0o040000);
  assert.is(root.attr_valid, 86400);
  // A missing name is a negative entry (node id 0) the kernel may cache as long as any entry.
  const nope = reply(await lookup(p, 1, 'nope'));
  assert.is(nope.header.error, 0);
  assert.is(decodeEntryOut(nope.body).nodeid, 0);
  assert.is(decodeEntryOut(nope.body).entry_valid, 86400);
  assert.is(errnoOf(await lookup(p, big.nodeid, 'x')), C.ENOTDIR);
  assert.is(
    errnoOf(await p.handleRequest(request(C.FUSE_GETATTR, Buffer.alloc(16), { nodeid: 99999 }))),
    C.ENOENT,
  );
  assert.is(bridgeOf(p).lookupCount(bin.nodeid), 1);
  await entryOf(p, 1, 'bin');
  assert.is(bridgeOf(p).lookupCount(bin.nodeid), 2);
});

test('readlink, and EINVAL on a non-symlink', async () => {
  const p = await mount();
  const sh = index.resolve('/bin/sh');
  assert.equal(
    reply(await p.handleRequest(request(C.FUSE_READLINK, Buffer.alloc(0), { nodeid: sh }))).body,
    Buffer.from('big'),
  );
  assert.is(
    errnoOf(await p.handleRequest(request(C.FUSE_READLINK, Buffer.alloc(0), { nodeid: 1 }))),
    C.EINVAL,
  );
});

test('read: inline files, object files across 64 KiB boundaries, at and past EOF', async () => {
  const p = await mount();
  const passwdIno = index.resolve('/etc/passwd');
  // /etc/passwd exists in the image as a file: the placeholder must not replace it.
  assert.is((await entryOf(p, index.resolve('/etc'), 'passwd')).nodeid, passwdIno);
  const f = await open(p, passwdIno);
  assert.is(f.open_flags, C.FOPEN_KEEP_CACHE | C.FOPEN_NOFLUSH);
  assert.equal(await read(p, passwdIno, f.fh, 0, 4096), Buffer.from('root:x:0:0\n'));
  assert.equal(await read(p, passwdIno, f.fh, 5, 1), Buffer.from('x'));
  assert.is((await read(p, passwdIno, f.fh, 100, 10)).length, 0);
  await release(p, passwdIno, f.fh);

  const big = index.resolve('/bin/big');
  const h = await open(p, big);
  for (const [off, size] of [
    [0, 65536],
    [65000, 70000],
    [131071, 2],
    [299_990, 4096],
    [BIG.length, 10],
    [BIG.length + 5000, 10],
  ]) {
    const got = await read(p, big, h.fh, off, size);
    assert.equal(got, BIG.subarray(off, off + size), `read ${off}+${size}`);
  }
  const all = await read(p, big, h.fh, 0, 1 << 20);
  assert.is(all.length, BIG.length);
  assert.ok(all.equals(BIG));
  assert.is(bridgeOf(p).openFileCount, 1);
  await release(p, big, h.fh);
  assert.is(bridgeOf(p).openFileCount, 0);
  assert.is(cache.pinned, 0);
  // Handles are stateless (the node id): a READ of a file this server never opened — one opened
  // under a daemon that has since died — is still answered, and keeps nothing open.
  assert.is(h.fh, big);
  assert.equal(await read(p, big, h.fh, 10, 10), BIG.subarray(10, 20));
  assert.is(bridgeOf(p).openFileCount, 0);
  assert.is(cache.pinned, 0);
  // A handle that is not the node's id was never handed out by any server.
  assert.is(
    errnoOf(await p.handleRequest(request(C.FUSE_READ, readIn(h.fh + 1, 0, 10), { nodeid: big }))),
    C.EBADF,
  );
});

test('OPEN and READ of an inline file, and OPEN of an object whose fd is cached, answer without a promise', async () => {
  const p = await mount();
  const passwd = index.resolve('/etc/passwd');
  const openReq = (ino: number) =>
    p.handle(request(C.FUSE_OPEN, encodeOpenIn({ flags: 0, open_flags: 0 }), { nodeid: ino }));
  const inline = openReq(passwd);
  assert.instance(inline, Buffer);
  const fh = decodeOpenOut(reply(inline as Buffer).body).fh;
  const data = p.handle(request(C.FUSE_READ, readIn(fh, 0, 4096), { nodeid: passwd }));
  assert.instance(data, Buffer);
  assert.equal(reply(data as Buffer).body, Buffer.from('root:x:0:0\n'));
  await release(p, passwd, fh);

  const small = index.resolve('/bin/small');
  const first = await open(p, small); // the object's fd is opened (and cached) here
  const second = openReq(small);
  assert.instance(second, Buffer);
  const fh2 = decodeOpenOut(reply(second as Buffer).body).fh;
  // Object reads still go to the pool and come back as a promise.
  const objectRead = p.handle(request(C.FUSE_READ, readIn(fh2, 0, 4096), { nodeid: small }));
  assert.instance(objectRead, Promise);
  assert.equal(reply(await objectRead).body, SMALL);
  await release(p, small, first.fh);
  await release(p, small, fh2);
  assert.is(cache.pinned, 0);
});

test('open refuses writing, truncating and directories', async () => {
  const p = await mount();
  const big = index.resolve('/bin/big');
  const openWith = async (ino: number, flags: number) =>
    errnoOf(
      await p.handleRequest(request(C.FUSE_OPEN, encodeOpenIn({ flags, open_flags: 0 }), { nodeid: ino })),
    );
  assert.is(await openWith(big, 1), C.EROFS);
  assert.is(await openWith(big, 2), C.EROFS);
  assert.is(await openWith(big, C.O_TRUNC), C.EROFS);
  assert.is(await openWith(1, 0), C.EISDIR);
  assert.is(
    errnoOf(
      await p.handleRequest(
        request(C.FUSE_OPENDIR, encodeOpenIn({ flags: 0, open_flags: 0 }), { nodeid: big }),
      ),
    ),
    C.ENOTDIR,
  );
  const d = decodeOpenOut(
    reply(
      await p.handleRequest(
        request(C.FUSE_OPENDIR, encodeOpenIn({ flags: 0, open_flags: 0 }), { nodeid: 1 }),
      ),
    ).body,
  );
  assert.is(d.open_flags, C.FOPEN_CACHE_DIR | C.FOPEN_KEEP_CACHE);
  assert.is(
    errnoOf(
      await p.handleRequest(request(C.FUSE_ACCESS, Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), { nodeid: big })),
    ),
    C.EROFS,
  );
  assert.is(
    errnoOf(
      await p.handleRequest(request(C.FUSE_ACCESS, Buffer.from([5, 0, 0, 0, 0, 0, 0, 0]), { nodeid: big })),
    ),
    0,
  );
});

test('readdir pages with small buffers: offsets are positions, "." and ".." first, nothing lost or repeated', async () => {
  const p = await mount();
  const many = index.resolve('/many');
  const names: string[] = [];
  let offset = 0;
  for (let rounds = 0; rounds < 100; rounds++) {
    const body = reply(
      await p.handleRequest(request(C.FUSE_READDIR, readIn(0, offset, 100), { nodeid: many })),
    ).body;
    const list = decodeDirents(body);
    if (list.length === 0) break;
    assert.ok(list.length <= 3);
    for (const d of list) names.push(d.name.toString());
    offset = list[list.length - 1].off;
  }
  assert.is(names.length, 42);
  assert.equal(names.slice(0, 3), ['.', '..', 'entry-00']);
  assert.is(names[41], 'entry-39');
  const first = decodeDirents(
    reply(await p.handleRequest(request(C.FUSE_READDIR, readIn(0, 0, 4096), { nodeid: many }))).body,
  );
  assert.is(first[0].ino, many);
  assert.is(first[1].ino, 1);
  assert.is(first[2].type, 8);
  assert.is(first[2].off, 3);
});

test('readdirplus returns attributes and counts lookups except for "." and ".."', async () => {
  const p = await mount();
  const bin = index.resolve('/bin');
  const list = decodeDirentplusList(
    reply(await p.handleRequest(request(C.FUSE_READDIRPLUS, readIn(0, 0, 4096), { nodeid: bin }))).body,
  );
  assert.equal(
    list.map((e) => e.dirent.name.toString()),
    ['.', '..', 'big', 'sh', 'small'],
  );
  assert.is(list[0].entry_out.nodeid, 0);
  assert.is(list[1].entry_out.nodeid, 0);
  const big = list[2];
  assert.is(big.entry_out.nodeid, index.resolve('/bin/big'));
  assert.is(big.entry_out.attr.size, BIG.length);
  assert.is(big.entry_out.entry_valid, 86400);
  const b = bridgeOf(p);
  assert.is(b.lookupCount(bin), 0);
  assert.is(b.lookupCount(big.entry_out.nodeid), 1);
  // paging: a buffer for one record at a time
  const page = decodeDirentplusList(
    reply(await p.handleRequest(request(C.FUSE_READDIRPLUS, readIn(0, 2, 160), { nodeid: bin }))).body,
  );
  assert.equal(
    page.map((e) => e.dirent.name.toString()),
    ['big'],
  );
  assert.is(page[0].dirent.off, 3);
  assert.is(b.lookupCount(big.entry_out.nodeid), 2);
  // FORGET drops counts; unknown nodes and over-forgetting are harmless
  await p.handleRequest(
    request(C.FUSE_FORGET, encodeForgetIn({ nlookup: 1 }), { nodeid: big.entry_out.nodeid }),
  );
  assert.is(b.lookupCount(big.entry_out.nodeid), 1);
  await p.handleRequest(
    request(
      C.FUSE_BATCH_FORGET,
      encodeBatchForgetIn([
        { nodeid: big.entry_out.nodeid, nlookup: 5 },
        { nodeid: 123456, nlookup: 1 },
      ]),
    ),
  );
  assert.is(b.lookupCount(big.entry_out.nodeid), 0);
  assert.is(
    await p.handleRequest(request(C.FUSE_FORGET, encodeForgetIn({ nlookup: 1 }), { nodeid: 987654 })),
    null,
  );
  assert.is(
    errnoOf(
      await p.handleRequest(request(C.FUSE_GETATTR, Buffer.alloc(16), { nodeid: big.entry_out.nodeid })),
    ),
    0,
  );
});

test('xattrs: probe, ERANGE, ENODATA, list', async () => {
  const p = await mount();
  const big = index.resolve('/bin/big');
  const get = (n: string, size: number) =>
    p.handleRequest(
      request(C.FUSE_GETXATTR, Buffer.concat([encodeGetxattrIn({ size }), name(n)]), { nodeid: big }),
    );
  assert.is(reply(await get('user.note', 0)).body.readUInt32LE(0), 5);
  assert.is(errnoOf(await get('user.note', 4)), C.ERANGE);
  assert.equal(reply(await get('user.note', 5)).body, Buffer.from('hello'));
  assert.is(errnoOf(await get('user.missing', 100)), C.ENODATA);
  const list = (ino: number, size: number) =>
    p.handleRequest(request(C.FUSE_LISTXATTR, encodeGetxattrIn({ size }), { nodeid: ino }));
  const len = reply(await list(big, 0)).body.readUInt32LE(0);
  assert.is(len, 'security.capability\0user.note\0'.length);
  assert.equal(decodeXattrNames(reply(await list(big, len)).body), ['security.capability', 'user.note']);
  assert.is(errnoOf(await list(big, 3)), C.ERANGE);
  assert.is(reply(await list(1, 0)).body.readUInt32LE(0), 0);
});

test('statfs and lseek', async () => {
  const p = await mount();
  const st = decodeStatfsOut(reply(await p.handleRequest(request(C.FUSE_STATFS))).body);
  assert.is(st.bsize, 4096);
  assert.is(st.files, index.inodeCount + 5);
  assert.ok(st.blocks >= Math.ceil(BIG.length / 4096));
  assert.is(st.bfree, 0);
  const big = index.resolve('/bin/big');
  const seek = (offset: number, whence: number) =>
    p.handleRequest(request(C.FUSE_LSEEK, encodeLseekIn({ fh: 0, offset, whence }), { nodeid: big }));
  assert.is(decodeLseekOut(reply(await seek(100, C.SEEK_DATA)).body).offset, 100);
  assert.is(decodeLseekOut(reply(await seek(100, C.SEEK_HOLE)).body).offset, BIG.length);
  assert.is(errnoOf(await seek(BIG.length, C.SEEK_DATA)), C.ENXIO);
});

test('placeholders: added without touching the store, parents created, wrong-typed image entries shadowed', async () => {
  const p = await mount();
  const proc = await entryOf(p, 1, 'proc');
  assert.ok(proc.nodeid > index.inodeCount);
  assert.is(proc.attr.mode, 0o040755);
  const sys = await entryOf(p, 1, 'sys');
  assert.is(sys.attr.mode, 0o040555);
  const dev = await entryOf(p, 1, 'dev');
  assert.is(dev.attr.mode & 0o170000, 0o040000, '/dev symlink is shadowed by a directory');
  const pts = await entryOf(p, dev.nodeid, 'pts');
  assert.is(pts.attr.mode & 0o170000, 0o040000);
  const etc = index.resolve('/etc');
  const hosts = await entryOf(p, etc, 'hosts');
  assert.is(hosts.attr.mode, 0o100644);
  assert.is(hosts.attr.size, 0);
  const h = await open(p, hosts.nodeid);
  assert.is((await read(p, hosts.nodeid, h.fh, 0, 100)).length, 0);
  await release(p, hosts.nodeid, h.fh);
  const rootNames = decodeDirents(
    reply(await p.handleRequest(request(C.FUSE_READDIR, readIn(0, 0, 4096), { nodeid: 1 }))).body,
  );
  assert.equal(
    rootNames.map((d) => d.name.toString()),
    ['.', '..', 'bin', 'dev', 'etc', 'many', 'proc', 'sys'],
  );
  assert.is(rootNames.find((d) => d.name.toString() === 'dev')!.type, 4);
  const devNames = decodeDirents(
    reply(await p.handleRequest(request(C.FUSE_READDIR, readIn(0, 0, 4096), { nodeid: dev.nodeid }))).body,
  );
  assert.equal(
    devNames.map((d) => [d.name.toString(), d.ino]),
    [
      ['.', dev.nodeid],
      ['..', 1],
      ['pts', pts.nodeid],
    ],
  );
  const etcNames = decodeDirents(
    reply(await p.handleRequest(request(C.FUSE_READDIR, readIn(0, 0, 4096), { nodeid: etc }))).body,
  );
  assert.equal(
    etcNames.map((d) => d.name.toString()),
    ['.', '..', 'passwd', 'hosts'],
  );
  const root = decodeAttrOut(
    reply(await p.handleRequest(request(C.FUSE_GETATTR, Buffer.alloc(16), { nodeid: 1 }))).body,
  );
  assert.is(root.attr.nlink, index.attr(1).nlink + 2, 'proc and sys count as subdirectories');
});

test('passthrough: one backing id per inode, kept until the session ends; opens keep nothing; inline files stay cached', async () => {
  const calls: string[] = [];
  let next = 10;
  const backing = {
    open: (fd: number) => (calls.push(`open ${typeof fd}`), next++),
    close: (id: number) => void calls.push(`close ${id}`),
  };
  const p = await mount({ backing });
  assert.is(p.info?.passthrough, true);
  const big = index.resolve('/bin/big');
  const a = await open(p, big);
  const b = await open(p, big);
  assert.is(a.open_flags, C.FOPEN_PASSTHROUGH | C.FOPEN_NOFLUSH);
  assert.is(a.backing_id, 10);
  assert.is(b.backing_id, 10);
  const small = await open(p, index.resolve('/bin/small'));
  assert.is(small.backing_id, 11);
  const inline = await open(p, index.resolve('/etc/passwd'));
  assert.is(inline.open_flags, C.FOPEN_KEEP_CACHE | C.FOPEN_NOFLUSH);
  assert.is(inline.backing_id, 0);
  assert.is(bridgeOf(p).openFileCount, 0, 'passthrough and inline opens are stateless');
  assert.is(cache.pinned, 0, 'the object fds went back to the cache: the kernel holds its own');
  await release(p, big, a.fh);
  await release(p, big, b.fh);
  assert.equal(calls, ['open number', 'open number'], 'nothing closed at RELEASE');
  const c = await open(p, big);
  assert.is(c.backing_id, 10, 'a later open reuses the id');
  assert.equal(calls, ['open number', 'open number']);
  // DESTROY releases what is left
  let destroyed = false;
  p.on('destroy', () => (destroyed = true));
  assert.is(errnoOf(await p.handleRequest(request(C.FUSE_DESTROY))), 0);
  assert.ok(destroyed);
  assert.equal(calls, ['open number', 'open number', 'close 10', 'close 11']);
  assert.is(bridgeOf(p).backingCount, 0);
  assert.is(bridgeOf(p).openFileCount, 0);
  assert.is(cache.pinned, 0);
});

test('adoption: a second server of a session answers without INIT, with the same node ids, handles and backing ids', async () => {
  const made: [number, number][] = [];
  let next = 20;
  const first = await mount({
    backing: { open: () => next++, close: () => undefined },
    onBacking: (ino: number, id: number, open: boolean) => void (open && made.push([ino, id])),
  });
  const big = await entryOf(first, index.resolve('/bin'), 'big');
  const opened = await open(first, big.nodeid);
  assert.is(opened.backing_id, 20);
  const smallIno = index.resolve('/bin/small');
  const small = await open(first, smallIno);
  assert.equal(made, [
    [big.nodeid, 20],
    [smallIno, 21],
  ]);
  // The first server dies here: the kernel still has both files open and knows every node id.

  const calls: string[] = [];
  const second = createImageHandler({
    index,
    storeRoot: store,
    placeholders: PLACEHOLDERS,
    fdCache: cache,
    backing: { open: () => (calls.push('open'), 99), close: (id) => void calls.push(`close ${id}`) },
  });
  second.adopt();
  bridgeOf(second).adoptBackings(made);
  assert.is(second.info?.passthrough, true);
  assert.is((await entryOf(second, index.resolve('/bin'), 'big')).nodeid, big.nodeid, 'same node id');
  // The first server's passthrough open: the kernel reads through the backing file and never
  // sends READ for it. A file opened without passthrough has the node id as its handle, and a
  // READ on it is served from the handle value alone.
  assert.is(small.fh, STATELESS_FH + smallIno);
  assert.equal(await read(second, smallIno, smallIno, 0, 4096), SMALL);
  assert.is(bridgeOf(second).openFileCount, 0, 'nothing kept for it');
  // A new OPEN of a file the kernel still has open under the old backing id reuses that id.
  const again = await open(second, big.nodeid);
  assert.is(again.backing_id, 20);
  await release(second, big.nodeid, again.fh);
  // RELEASE of a handle the first server gave out: nothing to free, and the adopted id stays.
  await release(second, smallIno, small.fh);
  assert.equal(calls, [], 'no backing made or closed');
  second.fs.destroy?.();
  first.fs.destroy?.();
  assert.is(cache.pinned, 0);
});

test('a backing capability that fails falls back to serving reads', async () => {
  const p = await mount({
    backing: {
      open: () => {
        throw new Error('EPERM');
      },
      close: () => undefined,
    },
  });
  const big = index.resolve('/bin/big');
  const h = await open(p, big);
  assert.is(h.open_flags, C.FOPEN_KEEP_CACHE | C.FOPEN_NOFLUSH);
  assert.equal(await read(p, big, h.fh, 10, 10), BIG.subarray(10, 20));
  await release(p, big, h.fh);
});

test('several mounts of one image and of different images at once, sharing the fd cache', async () => {
  const other = TreeIndex.decode(
    encodeTreeIndex(
      (() => {
        const r = newDir();
        r.children!.set('only-here', file(SMALL));
        return r;
      })(),
    ),
  );
  const mounts = [
    await mount(),
    await mount(),
    createImageHandler({ index: other, storeRoot: store, fdCache: cache }),
  ];
  await mounts[2].handleRequest(
    request(C.FUSE_INIT, encodeInitIn({ major: 7, minor: 45, max_readahead: 0, flags: 0n })),
  );
  const big = index.resolve('/bin/big');
  const handles = await Promise.all([open(mounts[0], big), open(mounts[1], big)]);
  const reads = await Promise.all(handles.map((h, i) => read(mounts[i], big, h.fh, 1000, 5000)));
  for (const r of reads) assert.equal(r, BIG.subarray(1000, 6000));
  const onlyHere = await entryOf(mounts[2], 1, 'only-here');
  const h2 = await open(mounts[2], onlyHere.nodeid);
  assert.equal(await read(mounts[2], onlyHere.nodeid, h2.fh, 0, 100), SMALL);
  assert.is((await entryOf(mounts[0], 1, 'only-here')).nodeid, 0);
  for (let i = 0; i < 2; i++) await release(mounts[i], big, handles[i].fh);
  await release(mounts[2], onlyHere.nodeid, h2.fh);
  assert.is(cache.pinned, 0);
});

test('many files through a 4-fd cache: fds beyond the bound are closed once released', async () => {
  const p = await mount();
  const many = index.resolve('/many');
  // all 40 entries share one object; open distinct objects instead
  const inos = [index.resolve('/bin/big'), index.resolve('/bin/small'), index.resolve(`/many/entry-00`)];
  for (const ino of inos) {
    const h = await open(p, ino);
    await release(p, ino, h.fh);
  }
  assert.ok(cache.size <= cache.max);
  assert.ok(many > 0);
});

test('a missing object is EIO, not a crash', async () => {
  const root = newDir();
  root.children!.set('gone', {
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtimeSec: 0,
    size: 10,
    digest: 'cd'.repeat(32),
  });
  const p = createImageHandler({
    index: TreeIndex.decode(encodeTreeIndex(root)),
    storeRoot: store,
    fdCache: cache,
  });
  await p.handleRequest(
    request(C.FUSE_INIT, encodeInitIn({ major: 7, minor: 45, max_readahead: 0, flags: 0n })),
  );
  const gone = (await entryOf(p, 1, 'gone')).nodeid;
  assert.is(
    errnoOf(
      await p.handleRequest(
        request(C.FUSE_OPEN, encodeOpenIn({ flags: 0, open_flags: 0 }), { nodeid: gone }),
      ),
    ),
    C.EIO,
  );
});

test('cleanup: no fds left open and the temp store removed', async () => {
  await cache.closeIdle();
  assert.is(cache.size, 0);
  rmSync(store, { recursive: true, force: true });
});

test.run();
