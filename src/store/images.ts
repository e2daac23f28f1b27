// Naming operations on imported images: tag and rm. Both are store mutations, so they run under
// the shared store lock (gc, which sweeps ingest/ where their temp files are written, takes it
// exclusively), then under refs.lock, which the importer also takes to write a record and its
// names, so `rm` never deletes a record that an import is just naming. Objects, blobs and
// indexes are left to gc.
import { refsLockPath } from './layout.js';
import { isStale, listLeases } from './leases.js';
import { lockFile, withStoreLock } from './lock.js';
import { removeRecord, resolveImage, type ImageInfo } from './records.js';
import { listRefs, normalizeName, parseReference, removeRef, setRef } from './refs.js';

function withNamingLocks<T>(root: string, fn: () => Promise<T>): Promise<T> {
  return withStoreLock(root, 'shared', async () => {
    const lock = await lockFile(refsLockPath(root), 'exclusive');
    try {
      return await fn();
    } finally {
      await lock.release();
    }
  });
}

/** Give the image `src` resolves to the name `newName` (moving the name if it existed). */
export function tagImage(root: string, src: string, newName: string): Promise<ImageInfo> {
  const name = normalizeName(newName);
  return withNamingLocks(root, async () => {
    const image = await resolveImage(root, src);
    await setRef(root, name, image.manifestDigest);
    return { ...image, names: [...new Set([...image.names, name])].sort() };
  });
}

export interface RemoveResult {
  ref: string;
  untagged: string[];
  /** The manifest digest when the image record went with its last name. */
  deleted?: string;
}

/**
 * Remove a name, or every name of an image given by digest. The record goes when no name and
 * no lease remains; a leased image stays listed (without names) until its lease is released.
 */
export function removeImage(root: string, ref: string): Promise<RemoveResult> {
  return withNamingLocks(root, async () => {
    const image = await resolveImage(root, ref);
    const parsed = parseReference(ref);
    const byName = parsed.kind === 'name' && parsed.name && image.names.includes(parsed.name);
    const untagged = byName ? [parsed.name] : image.names;
    for (const name of untagged) await removeRef(root, name);
    const digest = image.manifestDigest;
    const named = (await listRefs(root)).some((r) => r.digest === digest);
    // A stale lease (its holder is gone) holds nothing: gc releases it.
    const leased = (await listLeases(root)).some((l) => l.image === digest && !isStale(l));
    if (named || leased) return { ref, untagged };
    await removeRecord(root, digest);
    return { ref, untagged, deleted: digest };
  });
}
