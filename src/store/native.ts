// The kernel calls Node lacks (flock, syncfs) come from the native addon (src/native-addon.ts,
// owned by the native engineer). It may not be built on every machine, so it is loaded lazily and
// its absence is not an error: lock.ts and writer.ts fall back to util-linux flock(1) and
// coreutils `sync -f` (which calls syncfs) when it is missing.

export interface NativeFs {
  flock?(fd: number, op: number): void;
  syncfs?(fd: number): void;
}

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

let loaded: Promise<NativeFs> | undefined;

export function nativeFs(): Promise<NativeFs> {
  // A variable specifier keeps tsc from requiring the module to exist at build time.
  const spec = '../native-addon.js';
  loaded ??= import(spec).then(
    (mod: { native?: NativeFs }) => mod.native ?? {},
    () => ({}),
  );
  return loaded;
}

/** syncfs(2) on the filesystem holding `path`: the addon when built, else `sync -f PATH`. */
export async function syncFilesystem(path: string): Promise<void> {
  const native = await nativeFs();
  if (native.syncfs) {
    const { promises: fs, constants } = await import('node:fs');
    const fh = await fs.open(path, constants.O_RDONLY);
    try {
      native.syncfs(fh.fd);
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
