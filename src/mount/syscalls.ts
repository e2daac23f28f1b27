// The one seam between strata's mount logic and the kernel (youki's Syscall trait, narrowed): the
// new mount API, openat2, and the few file calls the mount builders make. `nativeSyscalls` is the
// real thing (native/ addon plus node:fs); `RecordingSyscalls` records every call so tests can
// assert sequences — and that every fd opened was closed — without touching the kernel.
import { closeSync, mkdirSync, openSync } from 'node:fs';

import { constants, native } from '../native-addon.js';

export interface Syscalls {
  fsopen(fsname: string, flags: number): number;
  fsconfigSetString(fd: number, key: string, value: string): void;
  fsconfigSetFlag(fd: number, key: string): void;
  fsconfigSetFd(fd: number, key: string, valueFd: number): void;
  fsconfigCreate(fd: number): void;
  /** CMD_CREATE off the JS thread (see NativeAddon.fsconfigCreateAsync). */
  fsconfigCreateAsync(fd: number): Promise<void>;
  fsmount(fd: number, flags: number, attrFlags: number): number;
  moveMount(fromDirfd: number, fromPath: string, toDirfd: number, toPath: string, flags: number): void;
  openTree(dirfd: number, path: string, flags: number): number;
  mountSetattr(dirfd: number, path: string, flags: number, attrSet: number, attrClr: number): void;
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number;
  /** open(2) of an absolute path (e.g. /dev/fuse). */
  open(path: string, flags: number): number;
  /** mkdir relative to a directory or mount fd. */
  mkdirat(dirfd: number, path: string, mode: number): void;
  close(fd: number): void;
}

export const nativeSyscalls: Syscalls = {
  fsopen: (fsname, flags) => native.fsopen(fsname, flags),
  fsconfigSetString: (fd, key, value) => native.fsconfigSetString(fd, key, value),
  fsconfigSetFlag: (fd, key) => native.fsconfigSetFlag(fd, key),
  fsconfigSetFd: (fd, key, valueFd) => native.fsconfigSetFd(fd, key, valueFd),
  fsconfigCreate: (fd) => native.fsconfigCreate(fd),
  fsconfigCreateAsync: (fd) => native.fsconfigCreateAsync(fd),
  fsmount: (fd, flags, attrFlags) => native.fsmount(fd, flags, attrFlags),
  moveMount: (fromDirfd, fromPath, toDirfd, toPath, flags) =>
    native.moveMount(fromDirfd, fromPath, toDirfd, toPath, flags),
  openTree: (dirfd, path, flags) => native.openTree(dirfd, path, flags),
  mountSetattr: (dirfd, path, flags, attrSet, attrClr) =>
    native.mountSetattr(dirfd, path, flags, attrSet, attrClr),
  openat2: (dirfd, path, flags, mode, resolve) => native.openat2(dirfd, path, flags, mode, resolve),
  open: (path, flags) => openSync(path, flags),
  // Through the fd's /proc magic link: Node has no mkdirat, and the link resolves to exactly the
  // directory (or detached mount root) the fd holds.
  mkdirat: (dirfd, path, mode) =>
    mkdirSync(dirfd === constants.AT_FDCWD ? path : `/proc/self/fd/${dirfd}/${path}`, { mode }),
  close: (fd) => closeSync(fd),
};

export interface RecordedCall {
  name: keyof Syscalls;
  args: unknown[];
}

/** A fake kernel for sequence tests. Calls that return an fd get fresh numbers from 1000 up;
 * `failOn` makes the n-th call of a name throw an errno-shaped error instead. */
export class RecordingSyscalls implements Syscalls {
  readonly calls: RecordedCall[] = [];
  /** fds handed out and not yet closed. */
  readonly openFds = new Set<number>();
  private nextFd = 1000;
  private readonly failures = new Map<string, { code: string; remaining: number }>();

  failOn(name: keyof Syscalls, code: string, nth = 1): this {
    this.failures.set(name, { code, remaining: nth });
    return this;
  }

  /** The recorded calls as compact strings, e.g. `fsconfigSetString(1000,"fd","7")`. */
  trace(): string[] {
    return this.calls.map((c) => `${c.name}(${c.args.map((a) => JSON.stringify(a)).join(',')})`);
  }

  private record(name: keyof Syscalls, args: unknown[]): void {
    this.calls.push({ name, args });
    const f = this.failures.get(name);
    if (f && --f.remaining === 0) {
      this.failures.delete(name);
      throw Object.assign(new Error(`${f.code}: injected failure, ${name}`), { code: f.code, syscall: name });
    }
  }

  private fd(name: keyof Syscalls, args: unknown[]): number {
    this.record(name, args);
    const fd = this.nextFd++;
    this.openFds.add(fd);
    return fd;
  }

  fsopen(fsname: string, flags: number): number {
    return this.fd('fsopen', [fsname, flags]);
  }
  fsconfigSetString(fd: number, key: string, value: string): void {
    this.record('fsconfigSetString', [fd, key, value]);
  }
  fsconfigSetFlag(fd: number, key: string): void {
    this.record('fsconfigSetFlag', [fd, key]);
  }
  fsconfigSetFd(fd: number, key: string, valueFd: number): void {
    this.record('fsconfigSetFd', [fd, key, valueFd]);
  }
  fsconfigCreate(fd: number): void {
    this.record('fsconfigCreate', [fd]);
  }
  async fsconfigCreateAsync(fd: number): Promise<void> {
    this.record('fsconfigCreateAsync', [fd]);
  }
  fsmount(fd: number, flags: number, attrFlags: number): number {
    return this.fd('fsmount', [fd, flags, attrFlags]);
  }
  moveMount(fromDirfd: number, fromPath: string, toDirfd: number, toPath: string, flags: number): void {
    this.record('moveMount', [fromDirfd, fromPath, toDirfd, toPath, flags]);
  }
  openTree(dirfd: number, path: string, flags: number): number {
    return this.fd('openTree', [dirfd, path, flags]);
  }
  mountSetattr(dirfd: number, path: string, flags: number, attrSet: number, attrClr: number): void {
    this.record('mountSetattr', [dirfd, path, flags, attrSet, attrClr]);
  }
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number {
    return this.fd('openat2', [dirfd, path, flags, mode, resolve]);
  }
  open(path: string, flags: number): number {
    return this.fd('open', [path, flags]);
  }
  mkdirat(dirfd: number, path: string, mode: number): void {
    this.record('mkdirat', [dirfd, path, mode]);
  }
  close(fd: number): void {
    this.record('close', [fd]);
    if (!this.openFds.delete(fd)) {
      throw Object.assign(new Error(`EBADF: bad file descriptor, close ${fd}`), {
        code: 'EBADF',
        syscall: 'close',
      });
    }
  }
}
