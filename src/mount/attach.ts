// Serving an image at a path in the caller's own mount namespace (`strata mount`, tests,
// benchmarks). The normal way is a detached mount (serve.ts) attached with move_mount. Where the
// new mount API is not permitted (fsopen EPERM: an unprivileged user, a seccomp profile), the
// fusermount3 helper mounts instead and passes the /dev/fuse fd back over a unix socket named by
// $_FUSE_COMMFD — libfuse's fuse_mount_fusermount protocol. Either way the session ends when
// the mount goes (umount, or `stop`), and then nothing is left: no mount, no fd, no thread, no
// lease. A mount here is in the host's namespace, where the image is untrusted input: it is
// always nosuid,nodev (a setuid-root file in an image must not give a local user euid 0), and
// other users get in only with `allowOther`. Container roots (serve.ts through the daemon) keep
// setuid and devices: there the container is the boundary.
import { closeSync } from 'node:fs';
import { resolve } from 'node:path';

import { constants, native } from '../native-addon.js';
import { FailedPreconditionError, isErrno } from '../errors.js';
import type { ImageRecord } from '../schema/generated/image-record.js';
import { mountAt } from './mountinfo.js';
import { setReadahead } from './fuse/readahead.js';
import {
  mountSource,
  prepareImage,
  READAHEAD_KIB,
  releaseWhenEnded,
  serveImage,
  type ServeImageOptions,
} from './serve.js';
import type { FuseProtocol } from './fuse/protocol.js';
import { FuseSession, type SessionEnd } from './session.js';
import { nativeSyscalls, type Syscalls } from './syscalls.js';

export type MountMethod = 'mount-api' | 'fusermount3';

/** Set to `fusermount3` to force the fallback (tests, or kernels where fsopen misbehaves). */
export const METHOD_ENV = 'STRATA_MOUNT_METHOD';
export const SUBTYPE = 'strata';

export interface MountImageOptions extends ServeImageOptions {
  /** An existing directory; the mount covers it. */
  dir: string;
  /** 'auto' (default): the new mount API, and fusermount3 when that is not permitted. */
  method?: 'auto' | MountMethod;
  /** Let users other than the mounting one in (FUSE allow_other). Default false. */
  allowOther?: boolean;
  syscalls?: Syscalls;
}

/** What every host-namespace mount gets, whatever the method. */
function hostMountAttrs(): number {
  return constants.MOUNT_ATTR_RDONLY | constants.MOUNT_ATTR_NOSUID | constants.MOUNT_ATTR_NODEV;
}

export interface AttachedImage {
  dir: string;
  method: MountMethod;
  image: ImageRecord;
  handler: FuseProtocol;
  session: FuseSession;
  /** The session's end, after the image's resources were released. */
  done: Promise<SessionEnd>;
  /** Lazily unmounts `dir` if our mount is still there, waits up to graceMs (default 2000) for
   * the kernel to end the session (ENODEV comes once open files are closed), then aborts it. */
  stop(graceMs?: number): Promise<SessionEnd>;
}

function methodFor(opts: MountImageOptions): 'auto' | MountMethod {
  const env = process.env[METHOD_ENV];
  if (opts.method && opts.method !== 'auto') return opts.method;
  return env === 'fusermount3' || env === 'mount-api' ? env : 'auto';
}

export async function mountImage(opts: MountImageOptions): Promise<AttachedImage> {
  const dir = resolve(opts.dir);
  const method = methodFor(opts);
  const allowOther = opts.allowOther ?? false;
  const lease = opts.lease ?? { kind: 'mount' as const, reader: dir };
  if (method !== 'fusermount3') {
    try {
      const served = await serveImage({
        ...opts,
        lease,
        subtype: SUBTYPE,
        allowOther,
        mountAttrs: hostMountAttrs(),
        syscalls: opts.syscalls,
      });
      try {
        attachDetached(served.mountFd, dir, opts.syscalls);
      } catch (err) {
        await served.session.close();
        await served.done;
        throw err;
      }
      return attached(dir, 'mount-api', served.image, served.handler, served.session, served.done);
    } catch (err) {
      if (method === 'mount-api' || !isErrno(err, 'EPERM')) throw err;
    }
  }
  const prepared = await prepareImage({ ...opts, lease });
  let devFd: number;
  try {
    devFd = await fusermount(
      dir,
      ['ro', 'nosuid', 'nodev', `fsname=${mountSource(prepared.image)}`, `subtype=${SUBTYPE}`],
      allowOther,
    );
  } catch (err) {
    await prepared.release();
    throw err;
  }
  prepared.bindDevice(devFd);
  const session = new FuseSession(devFd, prepared.handler);
  await setReadahead(dir, READAHEAD_KIB);
  const done = releaseWhenEnded(session, prepared);
  return attached(dir, 'fusermount3', prepared.image, prepared.handler, session, done);
}

function attached(
  dir: string,
  method: MountMethod,
  image: ImageRecord,
  handler: FuseProtocol,
  session: FuseSession,
  done: Promise<SessionEnd>,
): AttachedImage {
  const stop = async (graceMs = 2000): Promise<SessionEnd> => {
    if (session.isOpen && isStrataMount(dir)) await unmount(dir).catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((r) => (timer = setTimeout(r, graceMs)));
    await Promise.race([session.ended, grace]);
    clearTimeout(timer);
    if (session.isOpen) await session.close();
    return done;
  };
  return { dir, method, image, handler, session, done, stop };
}

/** Attaches a detached mount at `dir` and closes the mount fd: from now on the mount point in
 * this namespace is the only reference, so unmounting it ends the session. */
export function attachDetached(mountFd: number, dir: string, syscalls: Syscalls = nativeSyscalls): void {
  try {
    syscalls.moveMount(mountFd, '', constants.AT_FDCWD, dir, constants.MOVE_MOUNT_F_EMPTY_PATH);
  } finally {
    syscalls.close(mountFd);
  }
}

/**
 * Mounts FUSE at `dir` through the setuid fusermount3 helper and returns the /dev/fuse fd it
 * opened (close-on-exec). `options` go to `-o`; fusermount3 adds fd, rootmode, user_id and
 * group_id itself, default_permissions always, and allow_other when asked (a user other than
 * root needs user_allow_other in /etc/fuse.conf for that).
 */
export async function fusermount(dir: string, options: string[], allowOther = false): Promise<number> {
  // Loaded here: only the fallback needs child_process, and the server's heap pays for it.
  const { spawn } = await import('node:child_process');
  const [ours, theirs] = native.socketpair();
  try {
    const opts = [...options, ...(allowOther ? ['allow_other'] : []), 'default_permissions'].join(',');
    // stdio[3] = the socket: the child gets it as fd 3, without close-on-exec.
    const child = spawn('fusermount3', ['-o', opts, '--', dir], {
      stdio: ['ignore', 'ignore', 'pipe', theirs],
      env: { ...process.env, _FUSE_COMMFD: '3' },
    });
    closeSync(theirs);
    const stderr: Buffer[] = [];
    child.stderr!.on('data', (d: Buffer) => stderr.push(d));
    const code = await new Promise<number | null>((res, rej) => {
      child.on('error', (e) => rej(new Error(`fusermount3: ${e.message}`)));
      child.on('close', (c) => res(c));
    });
    // The helper has exited, so this recvmsg cannot block: the fd is queued, or it is EOF.
    const got = native.recvFds(ours, 1, 1);
    if (code !== 0 || got.fds.length !== 1) {
      for (const fd of got.fds) closeSync(fd);
      const why = Buffer.concat(stderr).toString().trim() || `exit ${code}`;
      throw new FailedPreconditionError(`fusermount3 could not mount ${dir}: ${why}`, {
        op: 'mount',
        path: dir,
      });
    }
    return got.fds[0];
  } finally {
    closeSync(ours);
  }
}

/** Whether the top mount at `dir` is a strata FUSE mount (either method). */
export function isStrataMount(dir: string): boolean {
  return mountAt(dir)?.fsType === `fuse.${SUBTYPE}`;
}

/**
 * Lazily unmounts a strata mount at `dir` (umount2 MNT_DETACH|UMOUNT_NOFOLLOW). Asynchronous on
 * purpose: the syscall runs on libuv's pool because unmounting may touch the mount point, which a
 * server in this very process answers.
 */
export async function unmount(dir: string): Promise<void> {
  const mount = mountAt(dir);
  if (mount?.fsType !== `fuse.${SUBTYPE}`) {
    const what = mount ? `a ${mount.fsType} mount` : 'not a mount point';
    throw new FailedPreconditionError(`${dir} is not a strata mount (${what})`, { op: 'umount', path: dir });
  }
  try {
    await native.umount2(mount.mountPoint, constants.MNT_DETACH | constants.UMOUNT_NOFOLLOW);
  } catch (err) {
    throw new FailedPreconditionError(
      `umount ${mount.mountPoint} failed: ${err instanceof Error ? err.message : String(err)}`,
      { op: 'umount', path: dir },
    );
  }
}
