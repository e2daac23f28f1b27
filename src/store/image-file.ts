// Reading a file of a stored image by its path inside the image, following symlinks the way the
// container would see them: absolute targets and ".." stay inside the image's root.
import { readFileSync } from 'node:fs';

import { objectPath } from './layout.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from './tree-index-format.js';
import type { TreeIndex } from './tree-index.js';

const MAX_SYMLINKS = 40;

/** The inode `path` names inside the image (symlinks followed), or 0 when there is none. */
export function resolveInImage(index: TreeIndex, path: string): number {
  const parts = path.split('/');
  const stack: number[] = [index.rootIno];
  let hops = 0;
  while (parts.length > 0) {
    const name = parts.shift() as string;
    if (name === '' || name === '.') continue;
    const dir = stack[stack.length - 1];
    if (name === '..') {
      if (stack.length > 1) stack.pop();
      continue;
    }
    if ((index.mode(dir) & S_IFMT) !== S_IFDIR) return 0;
    const ino = index.lookup(dir, name);
    if (ino === 0) return 0;
    if ((index.mode(ino) & S_IFMT) === S_IFLNK) {
      if (++hops > MAX_SYMLINKS) return 0;
      const target = index.readlink(ino).toString('utf8');
      if (target.startsWith('/')) stack.splice(1);
      parts.unshift(...target.split('/'));
      continue;
    }
    stack.push(ino);
  }
  return stack[stack.length - 1];
}

/** The content of a regular file of the image, or undefined when the path names none. */
export function readImageFile(index: TreeIndex, storeRoot: string, path: string): Buffer | undefined {
  const ino = resolveInImage(index, path);
  if (ino === 0 || (index.mode(ino) & S_IFMT) !== S_IFREG) return undefined;
  const content = index.content(ino);
  return content.kind === 'inline'
    ? Buffer.from(content.data)
    : readFileSync(objectPath(storeRoot, content.digest));
}
