// Many readers at once: 16 processes walk the mounted Debian image and hash every file in
// parallel, from a cold mount (every process races the others for the same lookups and reads);
// each one must see exactly the tree umoci unpack wrote.
import { spawn } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mountImage } from '../../src/mount/attach.js';
import { debianImage, walkTree, type Tree } from '../fixtures/images.js';
import { stopWaitingForCopies, tempStore } from './real-mount.js';

const READERS = 16;
// One line per entry: type, permission bits, owner, link count, path; then every file's sha256.
const SCRIPT =
  `cd "$1" && find . -printf 'e %y %m %U %G %n %p\\n' && ` +
  `find . -type f -exec sha256sum {} + | sed 's/^/h /'`;
const TYPE_LETTER: Record<string, string> = {
  dir: 'd',
  file: 'f',
  symlink: 'l',
  chardev: 'c',
  blockdev: 'b',
  fifo: 'p',
  socket: 's',
};

function expectedLines(tree: Tree): Set<string> {
  const lines = new Set<string>();
  for (const e of tree.values()) {
    const path = e.path === '/' ? '.' : `.${e.path}`;
    lines.add(`e ${TYPE_LETTER[e.type]} ${e.mode.toString(8)} ${e.uid} ${e.gid} ${e.nlink} ${path}`);
    if (e.type === 'file') lines.add(`h ${e.sha256}  ${path}`);
  }
  return lines;
}

function reader(dir: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', SCRIPT, 'sh', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('close', (code) =>
      resolve({ code, out: Buffer.concat(out).toString(), err: Buffer.concat(err).toString() }),
    );
  });
}

for (const passthrough of [false, true]) {
  test(`${READERS} processes walk and hash the Debian mount at once (passthrough ${passthrough ? 'on' : 'off'})`, async () => {
    const debian = await debianImage();
    const store = await tempStore({ debian });
    const expected = expectedLines(await walkTree(debian.rootfs));
    const dir = await store.mountPoint();
    const mount = await mountImage({ storeRoot: store.root, ref: 'debian', dir, passthrough });
    let warnings = 0;
    mount.handler.on('warn', () => warnings++);
    try {
      const started = Date.now();
      const results = await Promise.all(Array.from({ length: READERS }, () => reader(dir)));
      console.log(`    ${READERS} readers done in ${Date.now() - started} ms`);
      results.forEach((r, i) => {
        assert.is(r.code, 0, `reader ${i} failed: ${r.err}`);
        const got = new Set(r.out.split('\n').filter(Boolean));
        const missing = [...expected].filter((l) => !got.has(l)).slice(0, 10);
        const extra = [...got].filter((l) => !expected.has(l)).slice(0, 10);
        assert.equal({ missing, extra }, { missing: [], extra: [] }, `reader ${i} saw a different tree`);
      });
      assert.is(warnings, 0, 'server warnings');
    } finally {
      // The mount lived long (tens of seconds under load): another test's new mount namespace
      // may hold a copy of it, and the session ends when that goes; stop's 2 s grace is too short.
      await stopWaitingForCopies(mount);
    }
    assert.equal(await mount.done, { reason: 'unmounted' });
    assert.not.ok(store.mounts().includes(dir));
    await store.cleanup();
  });
}

test.run();
