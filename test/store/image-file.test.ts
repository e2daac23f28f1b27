import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { readImageFile, resolveInImage } from '../../src/store/image-file.js';
import { encodeTreeIndex, newDir, type TreeNode } from '../../src/store/tree-index-encode.js';
import { TreeIndex } from '../../src/store/tree-index.js';

function file(text: string): TreeNode {
  return {
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtimeSec: 0,
    size: text.length,
    inline: Buffer.from(text),
  };
}
function link(target: string): TreeNode {
  return { type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtimeSec: 0, target };
}

// /etc/passwd (file), /etc/group -> ../usr/share/group (relative), /usr/share/group,
// /etc/abs -> /usr/share/group, /etc/up -> ../../../../usr/share/group (clamped at /),
// /lib -> usr/lib (dir link), /usr/lib/os-release, /loop -> loop.
const root = newDir();
const etc = newDir();
const usr = newDir();
const share = newDir();
const lib = newDir();
root.children!.set('etc', etc).set('usr', usr).set('lib', link('usr/lib')).set('loop', link('loop'));
usr.children!.set('share', share).set('lib', lib);
share.children!.set('group', file('root:x:0:\n'));
lib.children!.set('os-release', file('ID=test\n'));
etc.children!.set('passwd', file('root:x:0:0::/root:/bin/sh\n'));
etc.children!.set('group', link('../usr/share/group')).set('abs', link('/usr/share/group'));
etc.children!.set('up', link('../../../../usr/share/group'));
const index = TreeIndex.decode(encodeTreeIndex(root));
const read = (p: string) => readImageFile(index, '/nonexistent-store', p)?.toString();

test('reads files by path, following symlinks inside the image only', () => {
  assert.is(read('/etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
  assert.is(read('/etc/group'), 'root:x:0:\n');
  assert.is(read('/etc/abs'), 'root:x:0:\n');
  assert.is(read('/etc/up'), 'root:x:0:\n', '.. stops at the image root');
  assert.is(read('/lib/os-release'), 'ID=test\n', 'a symlinked directory in the middle');
});

test('missing paths, directories and symlink loops read as undefined', () => {
  assert.is(read('/etc/shadow'), undefined);
  assert.is(read('/etc'), undefined);
  assert.is(read('/etc/passwd/x'), undefined);
  assert.is(read('/loop'), undefined);
  assert.is(resolveInImage(index, '/loop'), 0);
  assert.is(resolveInImage(index, '/'), index.rootIno);
});

test.run();
