// Layer reuse: an image whose first layers (by diff_id, in order) are exactly the layers of an
// image already in the store starts from that image's tree instead of an empty one, and those
// layers are never opened: a registry pull does not download them. The diff_id is the digest of
// the uncompressed tar, so equal diff_ids in the same order from an empty tree give the same
// tree; the stored tree index is that tree, decoded back into the importer's in-memory form
// (one node per inode, so hard links stay shared).
import { NotFoundError, DataLossError } from '../errors.js';
import type { ImageRecord } from '../schema/generated/image-record.js';
import { listRecordDigests, loadTreeIndex, readRecord } from './records.js';
import type { Store } from './store.js';
import {
  decodeDev,
  S_IFMT,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  type NodeType,
} from './tree-index-format.js';
import type { TreeNode } from './tree-index-encode.js';
import type { TreeIndex } from './tree-index.js';

export interface BaseImage {
  record: ImageRecord;
  /** How many leading layers it covers. */
  layers: number;
}

/** The stored image covering the most leading layers of `diffIds` (at least one), if any. */
export async function findBaseImage(store: Store, diffIds: string[]): Promise<BaseImage | undefined> {
  let best: BaseImage | undefined;
  let digests: string[];
  try {
    digests = await listRecordDigests(store.root);
  } catch {
    return undefined;
  }
  for (const digest of digests) {
    let record: ImageRecord;
    try {
      record = await readRecord(store.root, digest);
    } catch (err) {
      if (err instanceof NotFoundError || err instanceof DataLossError) continue;
      throw err;
    }
    const n = record.layers.length;
    if (n === 0 || n > diffIds.length || n <= (best?.layers ?? 0)) continue;
    if (record.layers.every((l, i) => l.diffId === diffIds[i])) best = { record, layers: n };
  }
  if (!best) return undefined;
  // Every object of the base must be here (a damaged base is not a base).
  const index = loadTreeIndex(store.root, best.record);
  for (let i = 0; i < index.objectTotal; i++)
    if (!(await store.hasObject(index.objectDigest(i)))) return undefined;
  return best;
}

const TYPES: [number, NodeType][] = [
  [S_IFDIR, 'dir'],
  [S_IFREG, 'file'],
  [S_IFLNK, 'symlink'],
  [S_IFCHR, 'chardev'],
  [S_IFBLK, 'blockdev'],
  [S_IFIFO, 'fifo'],
];

/** The in-memory tree an index was encoded from. */
export function treeFromIndex(index: TreeIndex): TreeNode {
  const nodes = new Map<number, TreeNode>();
  const make = (ino: number): TreeNode => {
    const a = index.attr(ino);
    const fmt = a.mode & S_IFMT;
    const type = TYPES.find(([bits]) => bits === fmt)?.[1] ?? 'socket';
    const node: TreeNode = { type, mode: a.mode & 0o7777, uid: a.uid, gid: a.gid, mtimeSec: a.mtimeSec };
    if (a.mtimeNsec) node.mtimeNsec = a.mtimeNsec;
    const xattrs = index.xattrs(ino);
    if (xattrs.length) node.xattrs = new Map(xattrs.map((x) => [x.name, Buffer.from(x.value)]));
    if (type === 'file') {
      const c = index.content(ino);
      if (c.kind === 'inline') node.inline = Buffer.from(c.data);
      else {
        node.digest = c.digest;
        node.size = a.size;
      }
    } else if (type === 'symlink') node.target = index.readlink(ino).toString();
    else if (type === 'chardev' || type === 'blockdev') {
      const { major, minor } = decodeDev(a.rdev);
      node.rdevMajor = major;
      node.rdevMinor = minor;
    } else if (type === 'dir') node.children = new Map();
    return node;
  };
  const root = make(index.rootIno);
  nodes.set(index.rootIno, root);
  // A loop, not recursion: the depth is the image's.
  const stack = [index.rootIno];
  for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
    const parent = nodes.get(dir)!;
    const count = index.entryCount(dir);
    for (let i = 0; i < count; i++) {
      const e = index.entry(dir, i)!;
      let kid = nodes.get(e.ino);
      if (!kid) {
        kid = make(e.ino);
        nodes.set(e.ino, kid);
        if (kid.type === 'dir') stack.push(e.ino);
      }
      parent.children!.set(e.name.toString(), kid);
    }
  }
  return root;
}
