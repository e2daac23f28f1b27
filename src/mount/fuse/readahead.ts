// The readahead window of a FUSE mount. The kernel caps a FUSE superblock's readahead at its
// backing_dev_info default (128 KiB) whatever INIT's max_readahead says, so without passthrough a
// sequential read reaches the server as 128 KiB READs — eight round trips per MiB. The window is
// a property of the mount's bdi (/sys/class/bdi/<major>:<minor>/read_ahead_kb), which root may
// raise; READs then come as large as max_pages allows.
import { writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';

/** The bdi name of a device number: "major:minor", decoded as glibc's gnu_dev_major/minor. */
export function bdiName(dev: number): string {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/**
 * Sets the readahead window of the mount whose root `path` names (a directory, or
 * /proc/self/fd/N of a detached mount fd) to `kib`. Asynchronous on purpose: the stat of a FUSE
 * root may be a GETATTR that this very process answers. Returns false where the window cannot
 * be set (no root, no sysfs): reads still work, in smaller requests.
 */
export async function setReadahead(path: string, kib: number): Promise<boolean> {
  try {
    const { dev } = await stat(path);
    // Synchronous: a sysfs attribute, and three thread-pool trips less on every container's start.
    writeFileSync(`/sys/class/bdi/${bdiName(dev)}/read_ahead_kb`, `${kib}\n`);
    return true;
  } catch {
    return false;
  }
}
