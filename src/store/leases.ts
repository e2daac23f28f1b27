// Leases: GC roots for images in use (the run path takes one per container). A lease is created
// under the shared store lock after checking that its image exists, so a gc (exclusive) cannot
// sweep the image between the check and the write. Each lease names its holder (holder.ts); one
// whose holder no longer exists is stale, and is released under the exclusive lock, so that no
// lease created meanwhile under the same id can be taken for it.
// Lease files are written atomically but not fsynced (nor is their removal): a lease means
// something only while its holder lives, and no holder survives a power loss, so a lease that a
// crash of the machine loses or brings back is moot or stale either way; a crash of the process
// keeps the page cache. The fsyncs were disk flushes on every container's start and end
// (docs/architecture.md#start-path).
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Lease } from '../schema/generated/lease.js';
import { parseAndValidate, validate } from '../schema/validate.js';
import { createFileNoReplaceSync } from './atomic.js';
import { AlreadyExistsError, isErrno, NotFoundError } from '../errors.js';
import { currentHolder, holderAlive, type LeaseHolder } from './holder.js';
import { ingestDir, leasePath, sha256Hex } from './layout.js';
import { withStoreLock, type LockOptions } from './lock.js';
import { readRecord } from './records.js';

/** A lease held by `holder`, by default this process: it lasts until released or its holder ends. */
export async function createLease(
  root: string,
  id: string,
  imageDigest: string,
  labels?: Record<string, string>,
  holder: LeaseHolder = currentHolder(),
): Promise<Lease> {
  const image = `sha256:${sha256Hex(imageDigest)}`;
  const lease: Lease = {
    id,
    image,
    createdAt: new Date().toISOString(),
    ...(labels ? { labels } : {}),
    holder,
  };
  validate<Lease>('lease', lease, `lease ${id}`);
  const path = leasePath(root, id);
  return withStoreLock(root, 'shared', async () => {
    await readRecord(root, image);
    // Synchronous (a ~300-byte file, not fsynced): on every container's start path.
    const created = createFileNoReplaceSync(ingestDir(root), path, JSON.stringify(lease) + '\n');
    if (!created) throw new AlreadyExistsError(`lease ${id} already exists`, { op: 'create-lease', path });
    return lease;
  });
}

export async function releaseLease(root: string, id: string): Promise<void> {
  const path = leasePath(root, id);
  await withStoreLock(root, 'shared', () => unlinkLease(id, path));
}

async function unlinkLease(id: string, path: string): Promise<void> {
  try {
    await fs.unlink(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new NotFoundError(`no lease ${id}`, { op: 'release-lease', path });
    throw err;
  }
}

export async function readLease(root: string, id: string): Promise<Lease> {
  const path = leasePath(root, id);
  try {
    return parseAndValidate<Lease>('lease', await fs.readFile(path, 'utf8'), `lease ${path}`);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new NotFoundError(`no lease ${id}`, { op: 'read-lease', path });
    throw err;
  }
}

export interface LeaseEntry {
  id: string;
  path: string;
  /** undefined when the file is not a valid lease (fsck: lease-invalid). */
  lease: Lease | undefined;
}

/** Every lease file, valid or not (gc must treat an unreadable lease conservatively). */
export async function listLeaseEntries(root: string): Promise<LeaseEntry[]> {
  const dir = join(root, 'leases');
  const out: LeaseEntry[] = [];
  for (const file of (await fs.readdir(dir)).sort()) {
    if (!file.endsWith('.json')) continue;
    const id = file.slice(0, -5);
    const path = join(dir, file);
    try {
      out.push({ id, path, lease: await readLease(root, id) });
    } catch (err) {
      if (err instanceof NotFoundError) continue;
      out.push({ id, path, lease: undefined });
    }
  }
  return out;
}

export async function listLeases(root: string): Promise<Lease[]> {
  return (await listLeaseEntries(root)).flatMap((e) => (e.lease ? [e.lease] : []));
}

/** A lease whose holder no longer exists. A lease without a holder (written before holders were
 * recorded) cannot be judged and is never stale. */
export function isStale(lease: Lease): boolean {
  return lease.holder !== undefined && !holderAlive(lease.holder);
}

/**
 * Releases the stale leases that `which` selects (every stale lease when omitted) and returns them.
 * The caller holds the store lock exclusively (gc); releaseStaleLeases takes it.
 */
export async function releaseStaleLeasesLocked(
  root: string,
  which: (lease: Lease) => boolean = () => true,
): Promise<Lease[]> {
  const released: Lease[] = [];
  for (const entry of await listLeaseEntries(root)) {
    if (!entry.lease || !isStale(entry.lease) || !which(entry.lease)) continue;
    await unlinkLease(entry.id, entry.path).catch((err: unknown) => {
      if (!(err instanceof NotFoundError)) throw err;
    });
    released.push(entry.lease);
  }
  return released;
}

export function releaseStaleLeases(
  root: string,
  which?: (lease: Lease) => boolean,
  opts?: LockOptions,
): Promise<Lease[]> {
  return withStoreLock(root, 'exclusive', () => releaseStaleLeasesLocked(root, which), opts);
}
