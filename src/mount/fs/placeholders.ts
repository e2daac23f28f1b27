// Placeholder entries: empty directories and files that a container's mounts need (/proc, /dev,
// /etc/hosts, ...) and the image lacks. They live only in memory, numbered above the index's
// inodes; an image entry of the right type wins, one of the wrong type is shadowed (the mount
// point must exist for the runtime to mount onto it).
import { InvalidArgumentError } from '../../errors.js';
import { S_IFDIR, S_IFMT, S_IFREG } from '../../store/tree-index-format.js';
import type { TreeIndex } from '../../store/tree-index.js';

export interface PlaceholderSpec {
  path: string;
  type: 'dir' | 'file';
  mode?: number;
}

export interface PlaceholderNode {
  ino: number;
  parent: number;
  /** S_IFDIR or S_IFREG | permission bits */
  mode: number;
}

export interface PlaceholderTree {
  nodes: Map<number, PlaceholderNode>;
  /** Per directory: name -> placeholder ino, for names added or shadowed there. */
  children: Map<number, Map<string, number>>;
  /** Per directory: names the index lacks, in byte order (listed after the index's entries). */
  extra: Map<number, Buffer[]>;
}

function splitPath(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) {
    throw new InvalidArgumentError(`placeholder path must name an entry below /: ${JSON.stringify(path)}`, {
      path,
    });
  }
  return parts;
}

export function buildPlaceholders(index: TreeIndex, specs: PlaceholderSpec[]): PlaceholderTree {
  const tree: PlaceholderTree = { nodes: new Map(), children: new Map(), extra: new Map() };
  let next = index.inodeCount + 1;
  const typeOf = (ino: number): number => {
    const mode = tree.nodes.get(ino)?.mode ?? (index.has(ino) ? index.mode(ino) : 0);
    return mode & S_IFMT;
  };
  const find = (dir: number, name: string): number => {
    const placed = tree.children.get(dir)?.get(name);
    if (placed !== undefined) return placed;
    return index.has(dir) ? index.lookup(dir, name) : 0;
  };
  const add = (dir: number, name: string, mode: number): number => {
    const ino = next++;
    tree.nodes.set(ino, { ino, parent: dir, mode });
    let kids = tree.children.get(dir);
    if (!kids) tree.children.set(dir, (kids = new Map()));
    kids.set(name, ino);
    if (!index.has(dir) || index.lookup(dir, name) === 0) {
      const list = tree.extra.get(dir) ?? [];
      list.push(Buffer.from(name));
      list.sort(Buffer.compare);
      tree.extra.set(dir, list);
    }
    return ino;
  };

  for (const spec of specs) {
    const parts = splitPath(spec.path);
    let dir = index.rootIno;
    parts.forEach((name, i) => {
      const last = i === parts.length - 1;
      const wantType = last && spec.type === 'file' ? S_IFREG : S_IFDIR;
      const found = find(dir, name);
      if (found !== 0 && typeOf(found) === wantType) {
        dir = found;
        return;
      }
      if (found !== 0 && tree.nodes.has(found)) {
        throw new InvalidArgumentError(
          `placeholder ${spec.path} conflicts with another placeholder at ${name}`,
          {
            path: spec.path,
          },
        );
      }
      const perm =
        last && spec.mode !== undefined ? spec.mode & 0o7777 : wantType === S_IFDIR ? 0o755 : 0o644;
      dir = add(dir, name, wantType | perm);
    });
  }
  return tree;
}
