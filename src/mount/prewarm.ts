// Looks up, ahead of the container, the paths its start will look up in a freshly prepared root:
// the mount points the runtime's mounts are moved onto (the createContainer hook opens each with
// openat2) and the command the runtime executes. Each lookup in a new FUSE mount (and in the
// overlay above it) is a round trip to this process; made here while the runtime is still busy
// with its own setup, they leave the kernel's dentry caches warm and the hook's and exec's lookups
// never leave the kernel. docs/architecture.md#start-path has the numbers.
//
// Safety: the walk goes one component at a time with lstat, descends only into what lstat saw as
// a directory, and never follows a symlink, so nothing in the image can point it at a host path.
// The tree cannot change under it: the lower layer is an immutable index and nobody writes the
// upper layer before the container runs, which is after the hand-over; the caller stops the walk
// (and waits for the one lstat in flight) before it hands the mount over.
import { lstat } from 'node:fs/promises';
import { posix } from 'node:path';

/** At most this many lookups per root: a config with hundreds of mounts is warmed only in part. */
export const PREWARM_MAX_LOOKUPS = 64;

/** The relative paths to look up in a root for a container with these mounts and command. */
export function prewarmPaths(
  mounts: readonly { destination: string }[] | undefined,
  args: readonly string[] | undefined,
  env: readonly string[] | undefined,
): string[] {
  const out = new Set<string>();
  const add = (p: string): void => {
    const rel = posix.normalize(`/${p}`).slice(1);
    if (rel && !rel.split('/').includes('..')) out.add(rel);
  };
  for (const m of mounts ?? []) add(m.destination);
  const cmd = args?.[0];
  if (cmd && cmd.includes('/')) add(cmd);
  else if (cmd) {
    // The runtime searches the container's PATH, each miss a negative lookup.
    const path = env?.find((e) => e.startsWith('PATH='))?.slice(5) ?? '/usr/local/bin:/usr/bin:/bin';
    for (const dir of path.split(':').slice(0, 8)) if (dir.startsWith('/')) add(`${dir}/${cmd}`);
  }
  return [...out];
}

export interface Prewarm {
  /** Stops the walk; resolves once no lookup of it is in flight. */
  stop(): Promise<void>;
}

/** Walks `paths` under the mount `mountFd` (a mount root, through /proc/self/fd) in the
 * background. Errors (a path the image lacks) only end that path's walk. `look1` is lstat
 * (tests watch it). */
export function prewarm(
  mountFd: number,
  paths: readonly string[],
  look1: (path: string) => Promise<{ isDirectory(): boolean }> = lstat,
): Prewarm {
  let stopped = false;
  let budget = PREWARM_MAX_LOOKUPS;
  const seen = new Map<string, Promise<boolean>>();
  const base = `/proc/self/fd/${mountFd}`;
  /** Whether `rel` is a directory (lstat: a symlink is not), looked up once. */
  const look = (rel: string): Promise<boolean> => {
    let p = seen.get(rel);
    if (!p) {
      if (stopped || budget-- <= 0) return Promise.resolve(false);
      p = look1(`${base}/${rel}`).then(
        (st) => st.isDirectory(),
        () => false,
      );
      seen.set(rel, p);
    }
    return p;
  };
  const walk = async (rel: string): Promise<void> => {
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const isDir = await look(parts.slice(0, i).join('/'));
      if (!isDir || stopped) return;
    }
  };
  // Each path's components one after another (they share their parents), the paths side by side;
  // begun after this turn of the event loop, so that the answer the caller is about to send (the
  // createRuntime hook's) is written before the lookups' threads and FUSE requests compete with it.
  const done = new Promise<void>((resolve) =>
    setImmediate(() => void Promise.all(paths.map(walk)).then(() => resolve())),
  );
  return {
    stop: () => {
      stopped = true;
      return done;
    },
  };
}
