// Deep and long paths (issue 7 item 7) and symlink modes (item 12). Names Linux could not create
// are refused naming the layer and the entry; depth up to what PATH_MAX allows imports in time
// and memory linear in the path length (no recursion over the tree anywhere on the way: apply,
// opaque pruning, tree stats, index encode, fsck); symlinks are 0777 whatever the header says.
import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InvalidArgumentError } from '../../../src/errors.js';
import { fsck } from '../../../src/store/fsck.js';
import { importImage } from '../../../src/store/import.js';
import { NAME_MAX, PATH_MAX } from '../../../src/store/layer/entry-path.js';
import { loadTreeIndex } from '../../../src/store/records.js';
import { S_IFLNK } from '../../../src/store/tree-index-format.js';
import { hostileStore, importFails, plain, writeArchive } from '../hostile-import.js';
import { makeTar, type EntrySpec } from './helpers.js';

async function refused(entries: EntrySpec[]): Promise<{ message: string; ms: number }> {
  const { store, dir, cleanup } = await hostileStore();
  try {
    const tar = await makeTar(entries);
    const spec = await writeArchive(dir, [plain(tar)]);
    const t0 = performance.now();
    const err = await importFails(store, spec);
    const ms = performance.now() - t0;
    assert.instance(err, InvalidArgumentError, err.message);
    assert.match(err.message, spec.slice('oci-archive:'.length), 'names the source');
    assert.match(err.message, /layer sha256:[0-9a-f]{64}/, 'names the layer');
    return { message: err.message, ms };
  } finally {
    await cleanup();
  }
}

test('a name over NAME_MAX is refused naming the entry', async () => {
  const long = 'n'.repeat(NAME_MAX + 1);
  const { message } = await refused([{ name: `etc/${long}`, body: 'x' }]);
  assert.match(message, `has a component of 256 bytes, over NAME_MAX (255)`);
  assert.match(message, 'etc/nnnn');
});

test('the 20,000-deep entry of the issue is refused at once, not after 500 MiB', async () => {
  const base = process.memoryUsage().rss;
  const { message, ms } = await refused([{ name: 'a/'.repeat(20_000) + 'f', body: 'x' }]);
  assert.match(message, /is 40002 bytes long as an absolute path, over PATH_MAX \(4096\)/);
  assert.ok(message.length < 1000, 'the message shortens the name');
  assert.ok(ms < 5000, `${ms} ms`);
  assert.ok(process.memoryUsage().rss - base < 100 * 2 ** 20, 'RSS stays put');
});

test('a path one byte over PATH_MAX is refused, one at it imports', async () => {
  // '/' + path + NUL must fit in PATH_MAX.
  const fits = 'd/'.repeat((PATH_MAX - 4) / 2) + 'ff';
  assert.is(fits.length + 2, PATH_MAX);
  const { message } = await refused([{ name: fits + 'g', body: 'x' }]);
  assert.match(message, 'over PATH_MAX');
  const { store, dir, cleanup } = await hostileStore();
  try {
    const spec = await writeArchive(dir, [plain(await makeTar([{ name: fits, body: 'x' }]))]);
    const r = await importImage(store, spec, { name: 'fits' });
    assert.ok(loadTreeIndex(store.root, r.record).resolve(fits) > 0);
  } finally {
    await cleanup();
  }
});

test('a symlink target over PATH_MAX is refused', async () => {
  const { message } = await refused([{ name: 'l', type: 'symlink', linkname: 'x'.repeat(PATH_MAX) }]);
  assert.match(message, 'entry "l": symlink target of 4096 bytes, over PATH_MAX');
});

test('depth built entry by entry up to PATH_MAX: imports, with an opaque dir and whiteouts at the bottom', async () => {
  const depth = (PATH_MAX - 8) / 2; // 2044 directories; '.wh.gone' at the bottom is over PATH_MAX
  const dirs = Array.from({ length: depth }, (_, i) => 'a/'.repeat(i + 1));
  const bottom = dirs[dirs.length - 1];
  const lower: EntrySpec[] = [
    ...dirs.map((name) => ({ name, type: 'directory' as const, mode: 0o755 })),
    { name: `${bottom}old`, body: 'lower' },
    { name: `${bottom}gone`, body: 'lower' },
  ];
  const upper: EntrySpec[] = [
    { name: '.wh..wh..opq', body: '' }, // the root is opaque: pruning walks the whole depth
    ...dirs.map((name) => ({ name, type: 'directory' as const, mode: 0o700 })),
    { name: `${bottom}.wh.gone`, body: '' },
    { name: `${bottom}new`, body: 'upper' },
  ];
  const { store, dir, cleanup } = await hostileStore();
  try {
    const spec = await writeArchive(dir, [plain(await makeTar(lower)), plain(await makeTar(upper))]);
    const t0 = performance.now();
    const r = await importImage(store, spec, { name: 'deep' });
    const ms = performance.now() - t0;
    assert.ok(ms < 20_000, `${ms} ms`);
    const ix = loadTreeIndex(store.root, r.record);
    assert.ok(ix.resolve(`${bottom}new`) > 0);
    assert.is(ix.resolve(`${bottom}gone`), 0, 'whited out');
    assert.is(ix.resolve(`${bottom}old`), 0, 'under an opaque directory of the upper layer');
    assert.is(ix.attr(ix.resolve(bottom.slice(0, -1))).mode & 0o7777, 0o700);
    const { errors, findings } = await fsck(store);
    assert.is(errors, 0, JSON.stringify(findings));
  } finally {
    await cleanup();
  }
});

test('symlinks are 0777 in the tree index whatever mode their header carries', async () => {
  const { store, dir, cleanup } = await hostileStore();
  try {
    const tar = await makeTar([
      { name: 'bin/', type: 'directory', mode: 0o755 },
      { name: 'bin/sh', type: 'symlink', linkname: 'busybox', mode: 0o644 },
      { name: 'bin/ls', type: 'symlink', linkname: 'busybox', mode: 0o4755 },
    ]);
    const spec = await writeArchive(dir, [plain(tar)]);
    const r = await importImage(store, spec, { name: 'links' });
    const ix = loadTreeIndex(store.root, r.record);
    for (const path of ['bin/sh', 'bin/ls']) {
      assert.is(ix.attr(ix.resolve(path)).mode, S_IFLNK | 0o777, path);
    }
    // What Linux itself shows for a symlink, whatever mode it was asked for.
    const shown = execFileSync('sh', ['-c', `cd ${dir} && ln -s busybox sh && stat -c %a sh`]).toString();
    assert.is(shown.trim(), '777');
  } finally {
    await cleanup();
  }
});

test.run();
