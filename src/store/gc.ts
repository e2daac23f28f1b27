// Garbage collection: mark from the GC roots (refs and leases) through image records to their
// blobs, tree indexes and the objects those indexes reference; sweep everything else, and every
// ingest dir (no import can be running: gc holds the store lock exclusively). One
// implementation serves dry runs and real ones.
//
// A lease whose holder no longer exists (a daemon killed with -9) holds nothing: gc releases it
// (a dry run only counts it) and sweeps what it held.
//
// gc is conservative: when a root's record or index cannot be read it stops with DataLossError
// rather than sweep objects it can no longer prove unused (fsck --repair resolves that).
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { DataLossError, NotFoundError } from '../errors.js';
import { imageRecordPath } from './layout.js';
import { isStale, listLeaseEntries, releaseStaleLeasesLocked } from './leases.js';
import { withStoreLock, type LockOptions } from './lock.js';
import { listRecordDigests, loadTreeIndex, readRecord } from './records.js';
import { listRefs } from './refs.js';
import type { Store } from './store.js';

export type GcKind = 'objects' | 'blobs' | 'indexes' | 'images' | 'ingest';

export interface GcProgress {
  phase: 'mark' | 'sweep';
  done: number;
  total: number;
}

export interface GcOptions {
  dryRun?: boolean;
  onProgress?: (p: GcProgress) => void;
  onWait?: LockOptions['onWait'];
}

export interface GcResult {
  dryRun: boolean;
  removed: Record<GcKind, number>;
  bytes: Record<GcKind, number>;
  kept: { images: number; objects: number };
  /** Ids of the stale leases released (or, in a dry run, that would be). */
  staleLeases: string[];
}

interface Candidate {
  kind: GcKind;
  path: string;
}

export function gc(store: Store, opts: GcOptions = {}): Promise<GcResult> {
  return withStoreLock(store.root, 'exclusive', () => gcLocked(store, opts), { onWait: opts.onWait });
}

async function gcLocked(store: Store, opts: GcOptions): Promise<GcResult> {
  const root = store.root;
  const roots = new Set<string>();
  for (const ref of await listRefs(root)) if (ref.digest) roots.add(ref.digest);
  const staleLeases: string[] = [];
  for (const entry of await listLeaseEntries(root)) {
    if (!entry.lease) {
      throw new DataLossError(`lease ${entry.path} is unreadable; run strata fsck --repair before gc`, {
        op: 'gc',
        path: entry.path,
      });
    }
    if (isStale(entry.lease)) staleLeases.push(entry.id);
    else roots.add(entry.lease.image);
  }
  if (!opts.dryRun) await releaseStaleLeasesLocked(root, (l) => staleLeases.includes(l.id));

  const liveImages = new Set<string>();
  const liveBlobs = new Set<string>();
  const liveIndexes = new Set<string>();
  const liveObjects = new Set<string>();
  let done = 0;
  for (const digest of roots) {
    opts.onProgress?.({ phase: 'mark', done: done++, total: roots.size });
    let record;
    try {
      record = await readRecord(root, digest);
    } catch (err) {
      if (err instanceof NotFoundError) continue; // dangling root: nothing to keep
      throw err;
    }
    liveImages.add(hex(digest));
    liveBlobs.add(hex(record.manifestDigest)).add(hex(record.configDigest));
    liveIndexes.add(hex(record.indexDigest));
    let index;
    try {
      index = loadTreeIndex(root, record);
    } catch (err) {
      if (err instanceof NotFoundError) continue;
      throw new DataLossError(`${(err as Error).message}; run strata fsck --repair before gc`, {
        op: 'gc',
        cause: err,
      });
    }
    for (let i = 0; i < index.objectTotal; i++) liveObjects.add(index.objectDigest(i));
  }

  const doomed: Candidate[] = [];
  for await (const { digest, path } of store.listObjects()) {
    if (!liveObjects.has(digest)) doomed.push({ kind: 'objects', path });
  }
  const sweepDir = async (kind: GcKind, dir: string, live: (name: string) => boolean) => {
    for (const name of await fs.readdir(dir)) if (!live(name)) doomed.push({ kind, path: join(dir, name) });
  };
  await sweepDir('blobs', join(root, 'blobs', 'sha256'), (n) => liveBlobs.has(n));
  await sweepDir('indexes', join(root, 'indexes', 'sha256'), (n) => liveIndexes.has(n));
  const liveRecordFiles = new Set([...liveImages].map((h) => imageRecordPath(root, h)));
  for (const digest of await listRecordDigests(root)) {
    const path = imageRecordPath(root, digest);
    if (!liveRecordFiles.has(path)) doomed.push({ kind: 'images', path });
  }
  await sweepDir('ingest', join(root, 'ingest'), () => false);

  const result: GcResult = {
    dryRun: !!opts.dryRun,
    removed: { objects: 0, blobs: 0, indexes: 0, images: 0, ingest: 0 },
    bytes: { objects: 0, blobs: 0, indexes: 0, images: 0, ingest: 0 },
    kept: { images: liveImages.size, objects: liveObjects.size },
    staleLeases,
  };
  done = 0;
  for (const c of doomed) {
    if (done % 256 === 0) opts.onProgress?.({ phase: 'sweep', done, total: doomed.length });
    done++;
    result.removed[c.kind]++;
    result.bytes[c.kind] += await du(c.path);
    if (!opts.dryRun) await fs.rm(c.path, { recursive: true, force: true });
  }
  opts.onProgress?.({ phase: 'sweep', done, total: doomed.length });
  return result;
}

function hex(digest: string): string {
  return digest.replace(/^sha256:/, '');
}

/** Bytes held by a file or a directory tree (ingest dirs). */
async function du(path: string): Promise<number> {
  const st = await fs.lstat(path).catch(() => undefined);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const name of await fs.readdir(path)) total += await du(join(path, name));
  return total;
}
