// RawFileSystem: one optional method per opcode that FuseProtocol dispatches, in wire structs.
// A missing method answers ENOSYS. src/mount/fs/bridge.ts is the implementation that adapts
// node-level filesystems (fs/api.ts) to it.
import type { FuseAttrOut, FuseEntryOut, FuseGetattrIn } from './wire/attr.js';
import type { FuseInHeader } from './wire/header.js';
import type { FuseFlushIn, FuseOpenIn, FuseOpenOut, FuseReadIn, FuseReleaseIn } from './wire/open.js';
import type { FuseKstatfs } from './wire/statfs.js';
import type { FuseLseekIn } from './wire/lseek.js';
import type { FastPathHandle } from '../../native-addon.js';

export type Awaitable<T> = T | Promise<T>;

export interface RequestContext {
  header: FuseInHeader;
  /** Aborted when the kernel interrupts this request (its reply is then EINTR). */
  signal: AbortSignal;
}

/** What INIT settled on, handed to RawFileSystem.init and the 'init' event. */
export interface InitInfo {
  major: number;
  minor: number;
  /** flags offered by the kernel */
  kernelFlags: bigint;
  /** flags both sides agreed on (what went into the reply) */
  flags: bigint;
  maxReadahead: number;
  maxWrite: number;
  maxPages: number;
  passthrough: boolean;
}

export interface RawFileSystem {
  init?(info: InitInfo): void;
  /** A native fast path that answers some requests exactly as this filesystem would
   * (fs/native-fast-path.ts); the session hands it to its reader once INIT is answered. */
  nativeFastPath?(): FastPathHandle | undefined;
  destroy?(): void;
  lookup?(ctx: RequestContext, parent: number, name: Buffer): Awaitable<FuseEntryOut>;
  forget?(nodeid: number, nlookup: number): void;
  getattr?(ctx: RequestContext, nodeid: number, inp: FuseGetattrIn): Awaitable<FuseAttrOut>;
  readlink?(ctx: RequestContext, nodeid: number): Awaitable<Buffer>;
  open?(ctx: RequestContext, nodeid: number, inp: FuseOpenIn): Awaitable<FuseOpenOut>;
  read?(ctx: RequestContext, nodeid: number, inp: FuseReadIn): Awaitable<Buffer>;
  release?(ctx: RequestContext, nodeid: number, inp: FuseReleaseIn): Awaitable<void>;
  flush?(ctx: RequestContext, nodeid: number, inp: FuseFlushIn): Awaitable<void>;
  opendir?(ctx: RequestContext, nodeid: number, inp: FuseOpenIn): Awaitable<FuseOpenOut>;
  /** The encoded fuse_dirent records that fit in inp.size, starting after inp.offset. */
  readdir?(ctx: RequestContext, nodeid: number, inp: FuseReadIn): Awaitable<Buffer>;
  readdirplus?(ctx: RequestContext, nodeid: number, inp: FuseReadIn): Awaitable<Buffer>;
  releasedir?(ctx: RequestContext, nodeid: number, inp: FuseReleaseIn): Awaitable<void>;
  statfs?(ctx: RequestContext, nodeid: number): Awaitable<FuseKstatfs>;
  /** The whole value; FuseProtocol applies the size probe / ERANGE rules. */
  getxattr?(ctx: RequestContext, nodeid: number, name: string): Awaitable<Buffer>;
  listxattr?(ctx: RequestContext, nodeid: number): Awaitable<string[]>;
  access?(ctx: RequestContext, nodeid: number, mask: number): Awaitable<void>;
  lseek?(ctx: RequestContext, nodeid: number, inp: FuseLseekIn): Awaitable<number>;
}
