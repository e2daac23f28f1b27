// The native fast path for one mount (native/src/fast-path.c): the hot read-only requests —
// LOOKUP, GETATTR, READLINK, READDIR, READDIRPLUS, GETXATTR, LISTXATTR, and OPEN, READ and
// RELEASE of inline files through stateless handles (bridge.ts STATELESS_FH) — answered on
// the reader itself from the mapped tree index, without a trip through JavaScript. Mechanism only:
// bridge.ts and image-fs.ts define every answer, and test/mount/fs/native-fast-path.test.ts checks
// that the native answers are byte-identical to theirs for every node of the test images. What it
// does not take (other opcodes, placeholders and the directories they change, anything unusual)
// goes to TypeScript as before. Lookups it answers are not counted in the bridge's lookup counts:
// image nodes are never freed, so the counts only inform tests.
import { native, type FastPathHandle } from '../../native-addon.js';
import type { IndexedNodes } from './api.js';

export interface FastPathTimeouts {
  entryTimeout: number;
  attrTimeout: number;
  /** The bridge's passthrough backing id per inode number (u32, 0: none), which it keeps current. */
  backingIds: Buffer;
}

const U32 = 0x100000000;

/** The fast path over a filesystem's indexed nodes; undefined when it cannot answer exactly as
 * TypeScript would (timeouts the C side does not carry). */
export function createNativeFastPath(
  nodes: IndexedNodes,
  timeouts: FastPathTimeouts,
): FastPathHandle | undefined {
  const whole = (v: number) => Number.isInteger(v) && v >= 0 && v < U32;
  if (!whole(timeouts.entryTimeout) || !whole(timeouts.attrTimeout)) return undefined;
  const { buffer, ...geometry } = nodes.index.encoded;
  const defer = Buffer.alloc((geometry.inodeCount >> 3) + 1);
  for (const ino of nodes.deferred) {
    if (ino >= 1 && ino <= geometry.inodeCount) defer[ino >> 3] |= 1 << (ino & 7);
  }
  return native.fastPathCreate(buffer, geometry, defer, {
    entryTimeout: timeouts.entryTimeout,
    attrTimeout: timeouts.attrTimeout,
    xattrEnosys: geometry.xattrCount === 0,
    indexFd: nodes.indexFd ?? -1,
    backingIds: timeouts.backingIds,
  });
}
