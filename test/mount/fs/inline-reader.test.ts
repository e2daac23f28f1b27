import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InlineReader } from '../../../src/mount/fs/inline-reader.js';
import { native } from '../../../src/native-addon.js';
import { encodeTreeIndex, newDir, type TreeNode } from '../../../src/store/tree-index-encode.js';
import { TreeIndex } from '../../../src/store/tree-index.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-inline-reader-'));
const path = join(dir, 'index');
const PASSWD = Buffer.from('root:x:0:0:root:/root:/bin/sh\n');

function writeIndex(): void {
  const root: TreeNode = newDir();
  const etc: TreeNode = newDir();
  etc.children!.set('passwd', { type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeSec: 0, inline: PASSWD });
  // Filler: an index above 4 KiB, which readFileSync returns in a buffer of its own (not a slice
  // of Node's shared pool, where a view's offset is not its offset in the file).
  for (const n of ['a', 'b'])
    etc.children!.set(n, {
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtimeSec: 0,
      inline: Buffer.alloc(3000, n),
    });
  root.children!.set('etc', etc);
  writeFileSync(path, encodeTreeIndex(root));
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

test('inline contents come from the file, clamped like a READ, for a mapped or a read index', () => {
  writeIndex();
  const fds = openFds();
  for (const buf of [native.mmapFile(path), readFileSync(path)]) {
    const index = TreeIndex.decode(buf);
    const content = index.content(index.resolve('/etc/passwd'));
    if (content.kind !== 'inline') throw new Error('passwd should be inline');
    // What lets the reader use the view's offset: its ArrayBuffer is exactly the file.
    assert.is(content.data.buffer.byteLength, readFileSync(path).length);
    const reader = new InlineReader(path);
    assert.equal(reader.read(content.data, 0, 4096), PASSWD);
    assert.equal(reader.read(content.data, 5, 3), PASSWD.subarray(5, 8));
    assert.equal(reader.read(content.data, PASSWD.length - 2, 4096), PASSWD.subarray(-2));
    assert.is(reader.read(content.data, PASSWD.length + 10, 4096).length, 0);
    reader.close();
    reader.close(); // twice is harmless
    // Closed: the view itself still answers.
    assert.equal(reader.read(content.data, 0, 4096), PASSWD);
  }
  assert.is(openFds(), fds);
});

test('bytes are read from the file, not the buffer; a buffer that is not the whole file is used as is', () => {
  writeIndex();
  const buf = readFileSync(path); // a copy: changing the file does not change it
  const index = TreeIndex.decode(buf);
  const content = index.content(index.resolve('/etc/passwd'));
  if (content.kind !== 'inline') throw new Error('passwd should be inline');
  const onDisk = readFileSync(path);
  onDisk.fill(0x78, content.data.byteOffset, content.data.byteOffset + 4);
  writeFileSync(path, onDisk);
  const reader = new InlineReader(path);
  assert.equal(reader.read(content.data, 0, 6), Buffer.from('xxxx:x'));
  // A copy of the view has no position in the file.
  assert.equal(reader.read(Buffer.from(content.data), 0, 6), Buffer.from('root:x'));
  reader.close();
});

test('cleanup', () => {
  rmSync(dir, { recursive: true });
  assert.not.ok(existsSync(dir));
});

test.run();
