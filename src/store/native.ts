// The kernel calls Node lacks (flock, syncfs), from the native addon (src/native-addon.ts). It may
// not be built on every machine, and its absence is not an error here: lock.ts and writer.ts fall
// back to util-linux flock(1) and coreutils `sync -f` (which calls syncfs) when it is missing.
import { native, nativeBuilt } from '../native-addon.js';

export interface NativeFs {
  flock?(fd: number, op: number): void;
  syncfs?(fd: number): void;
}

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

/** The addon's flock and syncfs, or nothing when it is not built. */
export function nativeFs(): NativeFs {
  return nativeBuilt ? native : {};
}

/** syncfs(2) on the filesystem holding `path`: the addon when built, else `sync -f PATH`. */
export async function syncFilesystem(path: string): Promise<void> {
  const fsCalls = nativeFs();
  if (fsCalls.syncfs) {
    const { promises: fs, constants } = await import('node:fs');
    const fh = await fs.open(path, constants.O_RDONLY);
    try {
      fsCalls.syncfs(fh.fd);
    } finally {
      await fh.close();
    }
    return;
  }
  const { execFile } = await import('node:child_process');
  await new Promise<void>((resolve, reject) =>
    execFile('sync', ['-f', path], (err) => (err ? reject(err) : resolve())),
  );
}
