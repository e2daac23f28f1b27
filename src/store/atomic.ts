// The one way strata writes a file into place: create a temp file beside it (or under the store's
// ingest/) with O_CREAT|O_EXCL|O_NOFOLLOW and a random name, write, fsync, then move it into place
// — replacing (rename) or not (link + unlink; EEXIST means the same content is already there) —
// and fsync the directory. O_EXCL|O_NOFOLLOW is what makes this safe in a directory another user
// can write: a symlink (or anything) planted at the temp name makes the open fail with EEXIST
// instead of writing through it, and the next random name is tried; rename() and link() replace or
// refuse a planted name at the destination itself, never what it points to.
// A leaf: node:* only, so every folder (store, run, spec, the bundle writer) can use it.
import {
  closeSync,
  constants,
  fchmodSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  promises as fs,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';

/** open(2) flags of every temp file: a fresh inode or an error, never a followed symlink. */
export const CREATE_EXCLUSIVE =
  constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Random names collide with a planted file only by guessing 48 bits; a few tries are plenty. */
const TEMP_TRIES = 8;

function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === code;
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

// node:crypto on first use: the FUSE server imports this module but never makes a temp name,
// and crypto costs it a few hundred KiB of heap.
const require = createRequire(import.meta.url);
let randomBytes: typeof import('node:crypto').randomBytes | undefined;

export function tempName(dir: string, prefix = 'tmp'): string {
  randomBytes ??= (require('node:crypto') as typeof import('node:crypto')).randomBytes;
  return join(dir, `${prefix}-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** A new file at `path` (O_EXCL|O_NOFOLLOW): EEXIST if anything, a symlink included, is there. */
export function createExclusive(path: string, mode = 0o644): Promise<fs.FileHandle> {
  return fs.open(path, CREATE_EXCLUSIVE, mode);
}

/** A new temp file in `dir` under a fresh random name; retried when a name is taken. */
async function createTemp(dir: string, prefix: string, mode: number): Promise<[string, fs.FileHandle]> {
  for (let i = 0; ; i++) {
    const temp = tempName(dir, prefix);
    try {
      return [temp, await createExclusive(temp, mode)];
    } catch (err) {
      if (!isErrno(err, 'EEXIST') || i + 1 >= TEMP_TRIES) throw err;
    }
  }
}

function createTempSync(dir: string, prefix: string, mode: number): [string, number] {
  for (let i = 0; ; i++) {
    const temp = tempName(dir, prefix);
    try {
      return [temp, openSync(temp, CREATE_EXCLUSIVE, mode)];
    } catch (err) {
      if (!isErrno(err, 'EEXIST') || i + 1 >= TEMP_TRIES) throw err;
    }
  }
}

/**
 * Link `temp` to `dest` without replacing anything, then unlink `temp`. Returns false when
 * `dest` already existed (for content-addressed names: already present, which is success).
 */
export async function linkNoReplace(temp: string, dest: string, parentMade = false): Promise<boolean> {
  let created = true;
  try {
    await fs.link(temp, dest);
  } catch (err) {
    // ENOENT is either the destination's directory (make it once, then retry) or the temp file
    // itself (a bug or a concurrent cleanup): never loop on it.
    if (isErrno(err, 'ENOENT') && !parentMade) {
      await fs.mkdir(dirname(dest), { recursive: true });
      return linkNoReplace(temp, dest, true);
    }
    if (!isErrno(err, 'EEXIST')) throw err;
    created = false;
  }
  await fs.rm(temp, { force: true });
  return created;
}

export interface AtomicWriteOptions {
  /** Replace an existing file (rename) instead of keeping it (link, EEXIST = kept). */
  replace?: boolean;
  mode?: number;
  /** fsync the file and its directory (default). false: still atomic, not durable across a
   * power loss (for files whose meaning ends with the boot, such as leases). */
  durable?: boolean;
}

/**
 * Write `data` to `dest` atomically through a temp file in `tmpDir` (same filesystem).
 * Returns false when `replace` is off and `dest` already existed.
 */
export async function writeFileAtomic(
  tmpDir: string,
  dest: string,
  data: Buffer | string,
  opts: AtomicWriteOptions = {},
): Promise<boolean> {
  await fs.mkdir(tmpDir, { recursive: true });
  const [temp, fh] = await createTemp(tmpDir, 'tmp', opts.mode ?? 0o644);
  try {
    try {
      await fh.writeFile(data);
      if (opts.mode !== undefined) await fh.chmod(opts.mode);
      if (opts.durable ?? true) await fh.sync();
    } finally {
      await fh.close();
    }
    let created = true;
    if (opts.replace) {
      await fs.mkdir(dirname(dest), { recursive: true });
      await fs.rename(temp, dest);
    } else created = await linkNoReplace(temp, dest);
    if (opts.durable ?? true) await fsyncDir(dirname(dest));
    return created;
  } finally {
    await fs.rm(temp, { force: true });
  }
}

/**
 * writeFileAtomic for synchronous callers (run records, bundles, hooks.d entries): always
 * replaces, with the temp file beside `dest` (".NAME-PID-RANDOM"), so the directory must exist.
 * `durable: false` keeps the atomicity (rename) but skips both fsyncs: for files that cannot
 * outlive this boot anyway (a container's bundle), where each fsync costs a disk flush on the
 * start path when /run is not a tmpfs.
 */
export function writeFileAtomicSync(
  dest: string,
  data: Buffer | string,
  opts: { mode?: number; durable?: boolean } = {},
): void {
  const durable = opts.durable ?? true;
  const dir = dirname(dest);
  const [temp, fd] = createTempSync(dir, `.${basename(dest)}`, opts.mode ?? 0o644);
  try {
    try {
      let buf = typeof data === 'string' ? Buffer.from(data) : data;
      while (buf.length > 0) {
        buf = buf.subarray(writeSync(fd, buf));
      }
      if (opts.mode !== undefined) fchmodSync(fd, opts.mode);
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, dest);
    if (durable) fsyncDirSync(dir);
  } finally {
    rmSync(temp, { force: true });
  }
}

/**
 * writeFileAtomic without `replace` and without durability, synchronously: the temp file under
 * `tmpDir`, then link (EEXIST: kept, false) and unlink. For small files that describe this boot
 * only and are written on every container's start (leases): each awaited step of the async
 * version is a trip through the thread pool and the event loop.
 */
export function createFileNoReplaceSync(tmpDir: string, dest: string, data: Buffer | string): boolean {
  mkdirSync(tmpDir, { recursive: true });
  const [temp, fd] = createTempSync(tmpDir, 'tmp', 0o644);
  try {
    try {
      let buf = typeof data === 'string' ? Buffer.from(data) : data;
      while (buf.length > 0) buf = buf.subarray(writeSync(fd, buf));
    } finally {
      closeSync(fd);
    }
    return linkNoReplaceSync(temp, dest);
  } finally {
    rmSync(temp, { force: true });
  }
}

/** link(2) `temp` to `dest`, making dest's directory when missing: true when linked, false when
 * dest already existed (kept as it is). */
export function linkNoReplaceSync(temp: string, dest: string): boolean {
  try {
    linkSync(temp, dest);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) {
      if (!isErrno(err, 'EEXIST')) throw err;
      return false;
    }
    mkdirSync(dirname(dest), { recursive: true });
    try {
      linkSync(temp, dest); // a second ENOENT (temp itself gone) is thrown
    } catch (again) {
      if (!isErrno(again, 'EEXIST')) throw again;
      return false;
    }
  }
  return true;
}
