// Shared by the tests that serve real images on real mounts: import a fixture image into a
// fresh temp store, make temp mount points, and check that nothing leaked afterwards.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importImage } from '../../src/store/import.js';
import type { AttachedImage } from '../../src/mount/attach.js';
import { readMountinfo } from '../../src/mount/mountinfo.js';
import type { SessionEnd } from '../../src/mount/session.js';
import { openStore } from '../../src/store/store.js';
import type { TestImage } from '../fixtures/images.js';

export { fdSnapshot, fdsLeftSince, threadCount, waitFor, type FdSnapshot } from '../native/mini-fuse.js';

export interface TempStore {
  /** The temp dir holding the store and the mount points. */
  dir: string;
  root: string;
  /** strata mounts under dir. */
  mounts(): string[];
  /** A fresh empty directory to mount on. */
  mountPoint(): Promise<string>;
  cleanup(): Promise<void>;
}

/** A temp dir holding a store with the given images imported under the given names. */
export async function tempStore(images: Record<string, TestImage>): Promise<TempStore> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-mount-test-'));
  const root = join(dir, 'store');
  const store = await openStore(root);
  for (const [name, img] of Object.entries(images)) {
    await importImage(store, `oci:${img.ociLayout}:${img.tag}`, { name });
  }
  let n = 0;
  return {
    dir,
    root,
    mounts: () =>
      strataMounts()
        .map((m) => m.mountPoint)
        .filter((p) => p.startsWith(dir + '/')),
    mountPoint: async () => {
      const p = join(dir, `mnt${n++}`);
      await mkdir(p);
      return p;
    },
    cleanup: async () => {
      const left = strataMounts().filter((m) => m.mountPoint.startsWith(dir));
      if (left.length > 0) throw new Error(`mounts left under ${dir}: ${left.map((m) => m.mountPoint)}`);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Mount points of every strata FUSE mount in this namespace. */
export function strataMounts(): { mountPoint: string; source: string }[] {
  return readMountinfo().filter((m) => m.fsType === 'fuse.strata');
}

/** The device (`major:minor`, mountinfo's third field) of the top mount at `dir`, if any. */
function deviceAt(dir: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string | undefined {
  let dev: string | undefined;
  for (const fields of mountinfo.split('\n').map((l) => l.split(' '))) if (fields[4] === dir) dev = fields[2];
  return dev;
}

/**
 * Processes in other mount namespaces that hold a copy of the FUSE connection `dev` (`pid
 * cmdline`, one per namespace). Every mount namespace made while a mount exists (`unshare -m`, a
 * container being created: on this machine often another test's) starts with a copy of it;
 * unless propagation carries our unmount there, that copy keeps the connection alive until its
 * namespace goes, and the session ends (ENODEV) only then.
 */
export function mountCopiesElsewhere(dev: string): string[] {
  let own = '';
  try {
    own = readlinkSync('/proc/self/ns/mnt');
  } catch {
    // no /proc/self/ns: every namespace counts
  }
  const seen = new Set([own]);
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^[0-9]+$/.test(p))) {
    try {
      const ns = readlinkSync(`/proc/${pid}/ns/mnt`);
      if (seen.has(ns)) continue;
      seen.add(ns);
      const info = readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
      if (info.split('\n').some((l) => l.split(' ')[2] === dev))
        out.push(`${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * `mount.stop()` for a mount that lived long enough for other mount namespaces to copy it (see
 * mountCopiesElsewhere): waits for the session's end (ENODEV, once the last copy went) up to `ms`
 * instead of stop's 2 s grace, and throws naming the namespaces that still held a copy when stop
 * had to abort. Returns as soon as the session ends.
 */
export async function stopWaitingForCopies(mount: AttachedImage, ms = 120_000): Promise<SessionEnd> {
  const dev = deviceAt(mount.dir);
  const copies = dev ? mountCopiesElsewhere(dev) : [];
  let late: string[] = [];
  const timer = setTimeout(() => (late = dev ? mountCopiesElsewhere(dev) : []), Math.max(0, ms - 1000));
  const end = await mount.stop(ms).finally(() => clearTimeout(timer));
  if (end.reason !== 'unmounted')
    throw new Error(
      `the session ended ${JSON.stringify(end)}, not by the unmount; copies of the mount in other ` +
        `namespaces at stop: ${copies.join('; ') || 'none'}; before the abort: ${late.join('; ') || 'none'}`,
    );
  return end;
}
