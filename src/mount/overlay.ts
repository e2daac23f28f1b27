// A detached, writable overlay over a detached lower mount (normally the FUSE image mount), for
// containers that want a writable rootfs. As in docs/architecture.md#kernel-facts: upper and work on one
// fresh detached tmpfs (or in given directories on one filesystem), "lowerdir+" by fd (legacy
// "lowerdir" with an fd is EINVAL), then fsmount. The overlay holds its own references, so every
// intermediate fd is closed here; the caller still owns lowerMountFd.
import { readdir, stat, chmod, chown } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { constants } from '../native-addon.js';
import { InvalidArgumentError } from '../errors.js';
import { nativeSyscalls, type Syscalls } from './syscalls.js';

export interface OverlayOptions {
  /** Keep the upper layer in this directory instead of a fresh tmpfs (it must exist). */
  upperDir?: string;
  /** Overlay's work directory; must be on the same filesystem as upperDir and outside it.
   * Default: a sibling `.<name>.work` of upperDir, created if missing. */
  workDir?: string;
  /** tmpfs size option (e.g. '512m') when no upperDir is given. Default: tmpfs's own. */
  tmpfsSize?: string;
  /** Give an empty upperDir the mode and owner of the lower root (the image's "/"), which the
   * overlay's root shows: a fresh directory would show 0755 root:root whatever the image says. */
  upperRootFromLower?: boolean;
  /** Mount attributes for the overlay's fsmount. Default 0. */
  mountAttrs?: number;
  syscalls?: Syscalls;
}

const DIR_FLAGS = () => constants.O_PATH | constants.O_DIRECTORY | constants.O_CLOEXEC;

/** Resolves with the overlay's detached mount fd (close-on-exec). Async because creating the
 * overlay looks up the lower mount, which may be a FUSE mount served by this very thread. */
export async function createDetachedOverlay(
  lowerMountFd: number,
  opts: OverlayOptions = {},
): Promise<number> {
  const sys = opts.syscalls ?? nativeSyscalls;
  const fds: number[] = [];
  const track = (fd: number): number => (fds.push(fd), fd);
  try {
    let upperFd: number;
    let workFd: number;
    if (opts.upperDir === undefined) {
      if (opts.workDir !== undefined) {
        throw new InvalidArgumentError('overlay workDir given without upperDir', { path: opts.workDir });
      }
      const tmpfsFd = track(sys.fsopen('tmpfs', constants.FSOPEN_CLOEXEC));
      sys.fsconfigSetString(tmpfsFd, 'mode', '0755');
      if (opts.tmpfsSize !== undefined) sys.fsconfigSetString(tmpfsFd, 'size', opts.tmpfsSize);
      sys.fsconfigCreate(tmpfsFd);
      const tFd = track(sys.fsmount(tmpfsFd, constants.FSMOUNT_CLOEXEC, 0));
      sys.mkdirat(tFd, 'upper', 0o755);
      sys.mkdirat(tFd, 'work', 0o700);
      upperFd = track(sys.openat2(tFd, 'upper', DIR_FLAGS(), 0, constants.RESOLVE_IN_ROOT));
      workFd = track(sys.openat2(tFd, 'work', DIR_FLAGS(), 0, constants.RESOLVE_IN_ROOT));
    } else {
      const workDir = opts.workDir ?? join(dirname(opts.upperDir), `.${basename(opts.upperDir)}.work`);
      if (opts.workDir === undefined) ensureDir(sys, workDir);
      if (opts.upperRootFromLower && (await readdir(opts.upperDir)).length === 0) {
        // Async: the lower root may be a FUSE mount this very thread serves.
        const root = await stat(`/proc/self/fd/${lowerMountFd}`);
        await chown(opts.upperDir, root.uid, root.gid);
        await chmod(opts.upperDir, root.mode & 0o7777);
      }
      upperFd = track(sys.openat2(constants.AT_FDCWD, opts.upperDir, DIR_FLAGS(), 0, 0));
      workFd = track(sys.openat2(constants.AT_FDCWD, workDir, DIR_FLAGS(), 0, 0));
    }
    const ovlFd = track(sys.fsopen('overlay', constants.FSOPEN_CLOEXEC));
    sys.fsconfigSetString(ovlFd, 'source', 'strata');
    sys.fsconfigSetFd(ovlFd, 'lowerdir+', lowerMountFd);
    sys.fsconfigSetFd(ovlFd, 'upperdir', upperFd);
    sys.fsconfigSetFd(ovlFd, 'workdir', workFd);
    await sys.fsconfigCreateAsync(ovlFd);
    return sys.fsmount(ovlFd, constants.FSMOUNT_CLOEXEC, opts.mountAttrs ?? 0);
  } finally {
    for (const fd of fds.reverse()) sys.close(fd);
  }
}

function ensureDir(sys: Syscalls, path: string): void {
  try {
    sys.mkdirat(constants.AT_FDCWD, path, 0o700);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}
