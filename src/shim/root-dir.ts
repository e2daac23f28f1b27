// The mount points runc leaves in a strata-served task's root directory. That directory
// (<bundle>/rootfs) is empty on the host: strata's root is attached inside the container by the
// createContainer hook, but runc makes the mount points of /proc, /dev, /sys, /run and of every
// bind-mounted file (CRI's /etc/hosts, /etc/resolv.conf, ...) in it first, on the host's disk.
// containerd removes <bundle>/rootfs with rmdir after Delete, so they must go before Delete
// answers, or the bundle stays and the next task of that id fails with "mkdir ...: file exists".
import { lstatSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

/** Deeper than any mount point runc makes; bounds the walk on a hostile tree. */
const MAX_DEPTH = 32;
const MAX_ENTRIES = 10_000;

/**
 * Removes what runc made in `dir` (kept itself): empty directories and empty regular files, on
 * `dir`'s own filesystem only (never into a mount, never following a symlink). Returns what it
 * left (anything else: a file with data, a symlink, a mount), for the caller's log line.
 */
export function clearMountPoints(dir: string): string[] {
  let top;
  try {
    top = lstatSync(dir);
  } catch {
    return [];
  }
  if (!top.isDirectory()) return [dir];
  const left: string[] = [];
  let seen = 0;
  const walk = (path: string, depth: number): boolean => {
    let empty = true;
    for (const name of readdirSync(path)) {
      const p = join(path, name);
      if (++seen > MAX_ENTRIES || depth >= MAX_DEPTH) {
        left.push(p);
        empty = false;
        continue;
      }
      const st = lstatSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      let gone = false;
      if (st.dev === top.dev && st.isDirectory()) {
        if (walk(p, depth + 1)) gone = tryRemove(() => rmdirSync(p));
      } else if (st.dev === top.dev && st.isFile() && st.size === 0) {
        gone = tryRemove(() => unlinkSync(p));
      }
      if (!gone) {
        empty = false;
        if (!st.isDirectory() || st.dev !== top.dev) left.push(p);
      }
    }
    return empty;
  };
  try {
    walk(dir, 0);
  } catch (err) {
    left.push(`${dir} (${(err as Error).message})`);
  }
  return left;
}

function tryRemove(fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch {
    return false;
  }
}
