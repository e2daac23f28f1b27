// The typed surface of native/ (the N-API addon, built by `npm install` with node-gyp). Mechanism
// only: every function is one syscall or ioctl and throws Node-shaped errno errors
// ({ message, code: 'ENOENT', errno: -2, syscall, path? }). Policy lives in the callers.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

export interface NativeConstants {
  readonly FSOPEN_CLOEXEC: number;
  readonly FSMOUNT_CLOEXEC: number;
  readonly MOVE_MOUNT_F_SYMLINKS: number;
  readonly MOVE_MOUNT_F_AUTOMOUNTS: number;
  readonly MOVE_MOUNT_F_EMPTY_PATH: number;
  readonly MOVE_MOUNT_T_SYMLINKS: number;
  readonly MOVE_MOUNT_T_AUTOMOUNTS: number;
  readonly MOVE_MOUNT_T_EMPTY_PATH: number;
  readonly OPEN_TREE_CLONE: number;
  readonly OPEN_TREE_CLOEXEC: number;
  readonly MOUNT_ATTR_RDONLY: number;
  readonly MOUNT_ATTR_NOSUID: number;
  readonly MOUNT_ATTR_NODEV: number;
  readonly MOUNT_ATTR_NOEXEC: number;
  readonly MOUNT_ATTR_NOATIME: number;
  readonly MOUNT_ATTR_NODIRATIME: number;
  readonly MOUNT_ATTR_IDMAP: number;
  readonly MOUNT_ATTR_NOSYMFOLLOW: number;
  readonly AT_FDCWD: number;
  readonly AT_EMPTY_PATH: number;
  readonly AT_SYMLINK_NOFOLLOW: number;
  readonly AT_NO_AUTOMOUNT: number;
  readonly AT_RECURSIVE: number;
  readonly RESOLVE_NO_XDEV: number;
  readonly RESOLVE_NO_MAGICLINKS: number;
  readonly RESOLVE_NO_SYMLINKS: number;
  readonly RESOLVE_BENEATH: number;
  readonly RESOLVE_IN_ROOT: number;
  readonly MNT_FORCE: number;
  readonly MNT_DETACH: number;
  readonly MNT_EXPIRE: number;
  readonly UMOUNT_NOFOLLOW: number;
  readonly O_RDONLY: number;
  readonly O_WRONLY: number;
  readonly O_RDWR: number;
  readonly O_CREAT: number;
  readonly O_EXCL: number;
  readonly O_TRUNC: number;
  readonly O_PATH: number;
  readonly O_CLOEXEC: number;
  readonly O_DIRECTORY: number;
  readonly O_NOFOLLOW: number;
  readonly O_NONBLOCK: number;
  readonly LOCK_SH: number;
  readonly LOCK_EX: number;
  readonly LOCK_UN: number;
  readonly LOCK_NB: number;
  readonly CLD_EXITED: number;
  readonly M_TRIM_THRESHOLD: number;
  readonly M_MMAP_THRESHOLD: number;
  readonly M_ARENA_MAX: number;
  readonly CLD_KILLED: number;
  readonly CLD_DUMPED: number;
}

/** A SHA-256 context of the addon (native/src/objects.c), opaque to TypeScript. */
export type Sha256Handle = { readonly __brand: 'strata.Sha256' } & object;

/** A native fast path (native/src/fast-path.c) over one mapped tree index: fastPathCreate's
 * result, opaque to TypeScript. */
export type FastPathHandle = { readonly __brand: 'strata.FastPath' } & object;

/** Where an encoded tree index keeps its sections (src/store/tree-index.ts reads the header). */
export interface FastPathGeometry {
  inodeCount: number;
  direntCount: number;
  xattrCount: number;
  poolSize: number;
  inodesOff: number;
  direntsOff: number;
  xattrsOff: number;
  poolOff: number;
  objectCount: number;
  objectsOff: number;
}

export interface FastPathOptions {
  /** Seconds, as the TypeScript server answers them (whole, < 2^32). */
  entryTimeout: number;
  attrTimeout: number;
  /** GETXATTR answers ENOSYS (the image has no xattrs at all). */
  xattrEnosys: boolean;
  /** The index file, for inline contents (duplicated when it is the whole of `index`); -1: none. */
  indexFd: number;
  /** Passthrough backing id per inode number, u32 little-endian (0: none), kept alive and read
   * as TypeScript updates it: OPEN of a file that has one is answered natively. */
  backingIds: Buffer;
}

/** What waitidPidfd reports for an exited child: `code` is CLD_EXITED/KILLED/DUMPED, `status` the
 * exit status or the signal number. */
export interface ChildExit {
  code: number;
  status: number;
  pid: number;
}

/** Called with each request read from /dev/fuse, then once with (null, reason) when the reader
 * ended: 'ENODEV' (the mount is gone), 'stopped' (stopReader), or another errno code. */
export type ReaderCallback = (req: Buffer | null, endReason?: string) => void;

/** The peer of a unix socket as of its connect(2). */
export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export interface NativeAddon {
  readonly constants: NativeConstants;

  fsopen(fsname: string, flags: number): number;
  fsconfigSetString(fd: number, key: string, value: string): void;
  fsconfigSetFlag(fd: number, key: string): void;
  fsconfigSetFd(fd: number, key: string, valueFd: number): void;
  fsconfigCreate(fd: number): void;
  /** FSCONFIG_CMD_CREATE off the JS thread: for filesystems (overlay) whose creation touches a
   * FUSE mount this very process serves, which a synchronous call would deadlock. */
  fsconfigCreateAsync(fd: number): Promise<void>;
  /** umount2(2) on libuv's pool (a FUSE unmount may need this process's JS thread to answer);
   * rejects with an errno error naming the path. flags: MNT_DETACH, MNT_FORCE, ... */
  umount2(path: string, flags: number): Promise<void>;
  fsmount(fd: number, flags: number, attrFlags: number): number;
  moveMount(fromDirfd: number, fromPath: string, toDirfd: number, toPath: string, flags: number): void;
  openTree(dirfd: number, path: string, flags: number): number;
  mountSetattr(dirfd: number, path: string, flags: number, attrSet: number, attrClr: number): void;
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number;

  /** AF_UNIX SOCK_STREAM pair, both ends close-on-exec. */
  socketpair(): [number, number];
  /** One sendmsg with SCM_RIGHTS; `data` must hold at least one byte. Returns bytes sent. */
  sendFds(sockFd: number, data: Buffer, fds: number[]): number;
  /** One recvmsg; received fds are close-on-exec. Empty `data` means end of stream. Throws
   * EMSGSIZE (closing what arrived) when more than maxFds descriptors were sent. */
  recvFds(sockFd: number, maxBytes: number, maxFds: number): { data: Buffer; fds: number[] };
  /** A blocking, close-on-exec SOCK_SEQPACKET connection to the unix socket at `path`. */
  unixConnectSeqpacket(path: string): number;

  fuseDevClone(newDevFd: number, sessionDevFd: number): void;
  fuseBackingOpen(devFd: number, fd: number): number;
  fuseBackingClose(devFd: number, id: number): void;

  /** flock(2); with LOCK_NB a held lock throws code 'EWOULDBLOCK'. */
  flock(fd: number, operation: number): void;
  syncfs(fd: number): void;
  /**
   * On libuv's pool: SHA-256 of `buffers`, then stat `<objectsDir>/<hex[0:2]>/<hex[2:]>`; when it
   * is missing (state 1) or has another size (state 2), the content is written to a new file at
   * `tempPath` (O_EXCL|O_NOFOLLOW, `mode`); state 0: present with this size, nothing written.
   * The buffers must not change until the promise settles. On failure no temp file is left.
   */
  objectWrite(
    buffers: Buffer[],
    objectsDir: string,
    tempPath: string,
    mode: number,
  ): Promise<[string, 0 | 1 | 2]>;
  /** A SHA-256 context for sha256Update (on libuv's pool; one at a time per handle) and
   * sha256Digest (hex; the handle is spent). */
  sha256Create(): Sha256Handle;
  sha256Update(handle: Sha256Handle, buffers: Buffer[]): Promise<void>;
  sha256Digest(handle: Sha256Handle): string;
  /** The file mapped read-only (MAP_PRIVATE) as a Buffer, unmapped when the Buffer is collected.
   * Never write to it: a write is SIGSEGV, not an exception. The file must not be truncated while
   * mapped (SIGBUS); store files are immutable. Errors are errno errors naming the path. */
  mmapFile(path: string): Buffer;

  /** mallopt(3) (glibc); false when the value is refused. */
  mallopt(param: number, value: number): boolean;
  /** malloc_trim(0): returns free malloc memory of every arena to the kernel; true if any was. */
  mallocTrim(): boolean;
  /** madvise(MADV_DONTNEED) on the whole pages inside the buffer: their memory goes back to the
   * kernel now and reads as zeros afterwards (still valid to use). Returns the bytes discarded. */
  discardPages(buffer: Buffer | ArrayBufferLike): number;

  /** pipe2(O_CLOEXEC): [readFd, writeFd]. */
  pipe(): [number, number];
  /** TIOCSWINSZ on a terminal fd (a pty master). */
  setWinsize(fd: number, rows: number, cols: number): void;

  /** posix_spawn(3) (no copy of this process's page tables): `fds[i]` becomes the child's fd i
   * (-1: /dev/null); signals default, mask empty. Returns the pid; reap it (pidfdOpen, waitidPidfd). */
  spawnFast(path: string, argv: string[], env: string[], fds: number[]): number;
  prctlSetChildSubreaper(on: boolean): void;
  pidfdOpen(pid: number): number;
  /** Non-blocking waitid(P_PIDFD, WEXITED|WNOHANG): null while the child runs; reaps it otherwise. */
  waitidPidfd(pidfd: number): ChildExit | null;

  /** Starts a reader thread on a /dev/fuse fd (which it switches to O_NONBLOCK). bufferSize must
   * be at least 8192. Returns a handle for stopReader. */
  startReader(devFd: number, bufferSize: number, callback: ReaderCallback): number;
  /** Asks the reader to end; its callback then receives (null, 'stopped'). Unknown handles are ignored. */
  stopReader(handle: number): void;
  /** startReader's contract, but requests are read on the JS thread when libuv's epoll reports the
   * (non-blocking) device readable: one thread hand-over less per request. Stop with stopReader. */
  startPollReader(devFd: number, bufferSize: number, callback: ReaderCallback): number;
  /** From now on the reader answers what the fast path can without calling back; once per reader.
   * Unknown or finished handles are ignored. */
  setReaderFastPath(handle: number, fastPath: FastPathHandle): void;

  /** A fast path over `index` (which it keeps alive): `defer` has a bit per inode number (bit
   * ino & 7 of byte ino >> 3) set for nodes whose requests must go to TypeScript. */
  fastPathCreate(
    index: Buffer,
    geometry: FastPathGeometry,
    defer: Buffer,
    options: FastPathOptions,
  ): FastPathHandle;
  /** The fast path's reply to one request (header included), or null when TypeScript answers it.
   * devFd: the FUSE device to register backing ids on (readers pass theirs; default none). */
  fastPathAnswer(fastPath: FastPathHandle, request: Buffer, devFd?: number): Buffer | null;
  /** How many requests it answered so far. */
  fastPathAnswered(fastPath: FastPathHandle): number;
  /** Closes its duplicate of the index file and its objects dir now (not when collected) and stops
   * onBacking; once no reader uses it. */
  fastPathClose(fastPath: FastPathHandle): void;
  /** From now on the first OPEN of an object file is answered natively with passthrough: the
   * object under `objectsDir` is opened by its digest and registered on the reader's device, and
   * onBacking(ino, id) is called later on this thread for each id so made. Once per fast path,
   * after passthrough was negotiated. */
  fastPathEnableBacking(
    fastPath: FastPathHandle,
    objectsDir: string,
    onBacking: (ino: number, id: number) => void,
  ): void;

  /** SO_PEERCRED of a connected unix socket: who connected (native/src/daemon.c). */
  getPeerCred(sockFd: number): PeerCred;
  /** One datagram to the AF_UNIX socket at `path` ('@name' is abstract): sd_notify. */
  sendDatagram(path: string, data: Buffer, fds?: number[]): void;

  /** libseccomp's version ("2.5.4"), or null when libseccomp.so.2 cannot be loaded (dlopen). */
  seccompVersion(): string | null;
  /** seccomp_init(defaultAction), seccomp_arch_add of each arch (EEXIST ignored), one
   * seccomp_rule_add_array per rule (args: [arg, op, datumA, datumB] per comparison; a syscall
   * name libseccomp does not know is skipped and listed in `skipped`), seccomp_export_bpf.
   * Throws code 'ESECCOMP' for an unknown arch or a refused rule. */
  seccompCompile(
    defaultAction: number,
    arches: string[],
    rules: { action: number; syscall: string; args: number[] }[],
  ): Buffer & { skipped: string[] };
}

const require = createRequire(import.meta.url);

// From src/ under tsx, or from dist/src/ once compiled.
const candidates = ['../native/build/Release/strata.node', '../../native/build/Release/strata.node'].map(
  (rel) => new URL(rel, import.meta.url).pathname,
);

function load(): NativeAddon | undefined {
  const path = candidates.find((p) => existsSync(p));
  // check-layers: computed (the compiled addon, not a module of src/)
  return path === undefined ? undefined : (require(path) as NativeAddon);
}

const loaded = load();

/**
 * false where `npm install` has not built native/. Only the store asks: it has command-line
 * fallbacks (flock(1), `sync -f`, reading an index whole) so that images can still be imported.
 */
export const nativeBuilt: boolean = loaded !== undefined;

/** Stands in for the addon when it is not built: any use throws, saying how to build it. */
function notBuilt<T extends object>(): T {
  return new Proxy({} as T, {
    get() {
      throw new Error(`the native addon is not built (looked for ${candidates[0]}); run \`npm install\``);
    },
  });
}

// Every module reaches the addon through these two static exports: one way, visible to tsc and
// to scripts/check-layers.mjs.
export const native: NativeAddon = loaded ?? notBuilt<NativeAddon>();
export const constants: NativeConstants = loaded?.constants ?? notBuilt<NativeConstants>();
