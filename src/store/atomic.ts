// Atomic file primitives shared by the writer, records, refs and leases: every write goes to a
// temp file under ingest/, is fsynced, and is then moved into place, either without replacing
// (link + unlink; EEXIST means the same content is already there) or replacing (rename).
import { constants, promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { isErrno } from '../errors.js';

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
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
  const temp = tempName(tmpDir);
  try {
    const fh = await fs.open(temp, 'wx', opts.mode ?? 0o644);
    try {
      await fh.writeFile(data);
      if (opts.mode !== undefined) await fh.chmod(opts.mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    let created = true;
    if (opts.replace) {
      await fs.mkdir(dirname(dest), { recursive: true });
      await fs.rename(temp, dest);
    } else created = await linkNoReplace(temp, dest);
    await fsyncDir(dirname(dest));
    return created;
  } finally {
    await fs.rm(temp, { force: true });
  }
}
