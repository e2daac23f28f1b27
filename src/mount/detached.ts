// A FUSE mount made with the new mount API and never attached anywhere: the caller gets a mount
// fd to hand over (SCM_RIGHTS) to whoever attaches it, e.g. the createContainer hook. The mount
// lives exactly as long as some reference to it; when the last one goes, the session reads
// ENODEV and ends. See docs/architecture.md#kernel-facts.
import { closeSync } from 'node:fs';

import { constants, native } from '../native-addon.js';
import { FuseSession, type FuseRequestHandler, type FuseSessionOptions } from './session.js';
import { nativeSyscalls, type Syscalls } from './syscalls.js';

export interface DetachedMountOptions extends FuseSessionOptions {
  handler: FuseRequestHandler;
  /** The mount's source as /proc/self/mountinfo shows it. Default 'strata'. */
  fsname?: string;
  /** Shown as the type `fuse.<subtype>`. Default 'strata'. */
  subtype?: string;
  /** Let users other than the mounting one in (a container's processes). Default true. */
  allowOther?: boolean;
  /** Have the kernel check modes itself. Default true. */
  defaultPermissions?: boolean;
  /** Mount the superblock read-only. Default true. */
  readOnly?: boolean;
  /** user_id / group_id of the mount's owner. Default: this process. */
  uid?: number;
  gid?: number;
  /** Mount attributes for fsmount. Default MOUNT_ATTR_RDONLY when readOnly, else 0. NOSUID and
   * NODEV are deliberately not defaults: a container rootfs carries setuid binaries and may need
   * device nodes. */
  mountAttrs?: number;
  syscalls?: Syscalls;
}

export interface DetachedMount {
  /** The detached mount (O_PATH-like, close-on-exec). Hand it over, then close it. */
  mountFd: number;
  /** Already serving: FUSE_INIT is answered before anyone touches the mount. */
  session: FuseSession;
  /** The session's /dev/fuse fd (owned by the session). */
  devFd: number;
}

export async function createDetachedMount(opts: DetachedMountOptions): Promise<DetachedMount> {
  const sys = opts.syscalls ?? nativeSyscalls;
  const readOnly = opts.readOnly ?? true;
  const devFd = sys.open('/dev/fuse', constants.O_RDWR | constants.O_CLOEXEC);
  let fsFd = -1;
  let mountFd = -1;
  try {
    fsFd = sys.fsopen('fuse', constants.FSOPEN_CLOEXEC);
    // The fd goes by number as a string: FSCONFIG_SET_FD gives EINVAL for fuse.
    sys.fsconfigSetString(fsFd, 'fd', String(devFd));
    sys.fsconfigSetString(fsFd, 'source', opts.fsname ?? 'strata');
    sys.fsconfigSetString(fsFd, 'subtype', opts.subtype ?? 'strata');
    sys.fsconfigSetString(fsFd, 'rootmode', '40000');
    sys.fsconfigSetString(fsFd, 'user_id', String(opts.uid ?? process.getuid?.() ?? 0));
    sys.fsconfigSetString(fsFd, 'group_id', String(opts.gid ?? process.getgid?.() ?? 0));
    if (readOnly) sys.fsconfigSetFlag(fsFd, 'ro');
    if (opts.defaultPermissions ?? true) sys.fsconfigSetFlag(fsFd, 'default_permissions');
    if (opts.allowOther ?? true) sys.fsconfigSetFlag(fsFd, 'allow_other');
    sys.fsconfigCreate(fsFd);
    const attrs = opts.mountAttrs ?? (readOnly ? constants.MOUNT_ATTR_RDONLY : 0);
    mountFd = sys.fsmount(fsFd, constants.FSMOUNT_CLOEXEC, attrs);
    sys.close(fsFd);
    fsFd = -1;
  } catch (err) {
    if (mountFd >= 0) sys.close(mountFd);
    if (fsFd >= 0) sys.close(fsFd);
    sys.close(devFd);
    throw err;
  }
  // INIT is already queued; the first access to the mount blocks until it is answered.
  let session: FuseSession;
  try {
    session = new FuseSession(devFd, opts.handler, opts);
  } catch (err) {
    sys.close(mountFd);
    sys.close(devFd);
    throw err;
  }
  return { mountFd, session, devFd };
}

/**
 * Sends a mount fd over a unix socket and closes our copy, whether or not the send worked: a kept
 * copy pins the mount, and the session would never end.
 */
export function handOver(mountFd: number, sockFd: number, data: Buffer = Buffer.from('m')): void {
  try {
    native.sendFds(sockFd, data, [mountFd]);
  } finally {
    closeSync(mountFd);
  }
}
