// Proof on real mounts: what a process sees through strata's FUSE server equals what
// `umoci unpack` writes for the same image — every entry's type, mode, uid/gid, size, mtime,
// symlink target, device numbers, xattrs, link count and the sha256 of every file. And with
// passthrough, file reads never reach the server while the contents stay right.
import { closeSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mountImage } from '../../src/mount/attach.js';
import { createDetachedMount } from '../../src/mount/detached.js';
import { FUSE_OPEN, FUSE_READ } from '../../src/mount/fuse/constants.js';
import { prepareImage, releaseWhenEnded } from '../../src/mount/serve.js';
import { busyboxImage, debianImage, diffTrees, walkTree, type Tree } from '../fixtures/images.js';
import { run } from '../fixtures/run.js';
import { tempStore, type TempStore } from './real-mount.js';

let store: TempStore;
const references = new Map<string, Tree>();

test.before(async () => {
  const busybox = await busyboxImage();
  const debian = await debianImage();
  store = await tempStore({ busybox, debian });
  references.set('busybox', await walkTree(busybox.rootfs));
  references.set('debian', await walkTree(debian.rootfs));
});

test.after(async () => {
  await store.cleanup();
});

function assertSameTree(expected: Tree, actual: Tree, what: string): void {
  const diff = diffTrees(expected, actual, { limit: 40 });
  assert.ok(diff.length === 0, `${what} differs from umoci unpack:\n  ${diff.join('\n  ')}`);
  assert.is(actual.size, expected.size);
}

const CASES: [string, boolean][] = [
  ['busybox', true],
  ['busybox', false],
  ['debian', false],
  ['debian', true],
];

for (const [name, passthrough] of CASES) {
  test(`${name} through a mount (passthrough ${passthrough ? 'on' : 'off'}) equals umoci unpack`, async () => {
    const dir = await store.mountPoint();
    const mount = await mountImage({ storeRoot: store.root, ref: name, dir, passthrough });
    try {
      assert.is(mount.method, 'mount-api');
      const started = Date.now();
      const tree = await walkTree(dir);
      console.log(`    walked ${tree.size} entries in ${Date.now() - started} ms`);
      assertSameTree(references.get(name)!, tree, `${name} mounted at ${dir}`);
    } finally {
      await mount.stop();
    }
    assert.equal(await mount.done, { reason: 'unmounted' });
    assert.not.ok(store.mounts().includes(dir), 'the mount is gone');
  });
}

test('with passthrough, reads of object files never reach the server and return the right bytes', async () => {
  const prepared = await prepareImage({ storeRoot: store.root, ref: 'debian', passthrough: true });
  const opcodes = new Map<number, number>();
  const readNodes = new Set<number>();
  const counting = {
    handle(req: Buffer) {
      const op = req.readUInt32LE(4);
      opcodes.set(op, (opcodes.get(op) ?? 0) + 1);
      if (op === FUSE_READ) readNodes.add(Number(req.readBigUInt64LE(16)));
      return prepared.handler.handle(req);
    },
  };
  const m = await createDetachedMount({ handler: counting });
  prepared.bindDevice(m.devFd);
  const done = releaseWhenEnded(m.session, prepared);
  try {
    // Read from another process: this one's main thread answers the server's requests.
    const root = `/proc/${process.pid}/fd/${m.mountFd}`;
    const { stdout } = await run('sh', [
      '-c',
      'cd "$1" && find . -type f -size +0 -exec sha256sum {} +',
      'sh',
      root,
    ]);
    const got = new Map<string, string>();
    for (const line of stdout.split('\n').filter(Boolean)) got.set(line.slice(67), line.slice(0, 64));
    const expected = [...references.get('debian')!.values()].filter((e) => e.type === 'file' && e.size > 0);
    for (const e of expected) assert.is(got.get(e.path), e.sha256, e.path);
    assert.is(got.size, expected.length);
    assert.ok(prepared.handler.info?.passthrough, 'the kernel agreed to passthrough');
    assert.ok(expected.length > 1000, `read ${expected.length} files`);
    // Small files live inline in the tree index, with no file to pass through: only those are
    // read by the server.
    const objectReads = [...readNodes].filter((ino) => prepared.index.content(ino).kind !== 'inline');
    assert.equal(objectReads, [], 'READ requests at the server for object-backed files');
    assert.ok((opcodes.get(FUSE_OPEN) ?? 0) >= expected.length, 'every open went through the server');
    const bytes = expected.reduce((n, e) => n + e.size, 0);
    console.log(
      `    ${expected.length} files, ${(bytes / 2 ** 20).toFixed(0)} MiB read; READ requests: ` +
        `${opcodes.get(FUSE_READ) ?? 0}, all for ${readNodes.size} inline files`,
    );
  } finally {
    closeSync(m.mountFd);
  }
  assert.equal(await done, { reason: 'unmounted' });
});

test.run();
