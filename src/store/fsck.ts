// fsck: check everything in the store, collect every finding (never stop at the first), and
// with `repair` remove what is corrupt or stale. Each finding has a stable kebab-case kind.
//
// Repair deletes; it never invents content. A corrupt object is deleted, which turns it into an
// object-missing finding for every image that needs it: re-importing such an image rewrites the
// object (the importer's "already complete" shortcut checks that every object is present), after
// which fsck is clean. Errors that remain after repair say which image to re-import.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DataLossError, NotFoundError } from '../errors.js';
import { blobPath, imageRecordPath, SHA256_HEX, treeIndexPath } from './layout.js';
import { describeHolder } from './holder.js';
import { isStale, listLeaseEntries } from './leases.js';
import { withStoreLock, type LockOptions } from './lock.js';
import type { ImageRecord } from '../schema/generated/image-record.js';
import { listRecordDigests, readRecord } from './records.js';
import { listRefs } from './refs.js';
import type { Store } from './store.js';
import { TreeIndex } from './tree-index.js';

export type FsckKind =
  | 'object-digest-mismatch'
  | 'object-name-invalid'
  | 'object-mode'
  | 'object-missing'
  | 'blob-digest-mismatch'
  | 'blob-missing'
  | 'index-corrupt'
  | 'index-digest-mismatch'
  | 'index-missing'
  | 'record-invalid'
  | 'ref-invalid'
  | 'ref-dangling'
  | 'lease-invalid'
  | 'lease-dangling'
  | 'stale-lease'
  | 'stale-ingest';

/** Warnings do not make a store unclean (a killed import leaves a stale ingest dir, by design). */
const WARNINGS = new Set<FsckKind>(['stale-ingest', 'object-mode']);

export interface FsckFinding {
  kind: FsckKind;
  severity: 'error' | 'warning';
  path: string;
  digest?: string;
  message: string;
  repaired: boolean;
}

export interface FsckResult {
  findings: FsckFinding[];
  checked: { objects: number; blobs: number; indexes: number; images: number; refs: number; leases: number };
  /** Errors not repaired: the store is clean when this is 0. */
  errors: number;
}

export interface FsckOptions {
  repair?: boolean;
  onProgress?: (p: { phase: string; done: number; total: number }) => void;
  onWait?: LockOptions['onWait'];
}

export function fsck(store: Store, opts: FsckOptions = {}): Promise<FsckResult> {
  return withStoreLock(store.root, 'exclusive', () => new Checker(store, opts).run(), {
    onWait: opts.onWait,
  });
}

class Checker {
  private readonly findings: FsckFinding[] = [];
  private readonly checked = { objects: 0, blobs: 0, indexes: 0, images: 0, refs: 0, leases: 0 };
  private readonly objects = new Set<string>();
  private readonly indexes = new Map<string, TreeIndex>();
  private readonly blobs = new Set<string>();
  private readonly images = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly opts: FsckOptions,
  ) {}

  private async report(
    kind: FsckKind,
    path: string,
    message: string,
    digest?: string,
    fix?: () => Promise<void>,
  ) {
    let repaired = false;
    if (fix && this.opts.repair) {
      await fix();
      repaired = true;
    }
    const severity = WARNINGS.has(kind) ? 'warning' : 'error';
    this.findings.push({ kind, severity, path, ...(digest ? { digest } : {}), message, repaired });
  }

  private remove(path: string): () => Promise<void> {
    return () => fs.rm(path, { recursive: true, force: true });
  }

  async run(): Promise<FsckResult> {
    const root = this.store.root;
    for (const name of await fs.readdir(join(root, 'ingest'))) {
      const path = join(root, 'ingest', name);
      await this.report(
        'stale-ingest',
        path,
        `leftover of an interrupted import`,
        undefined,
        this.remove(path),
      );
    }
    await this.checkObjects();
    await this.checkContentDir('blobs', join(root, 'blobs', 'sha256'));
    await this.checkContentDir('indexes', join(root, 'indexes', 'sha256'));
    for (const digest of await listRecordDigests(root)) await this.checkRecord(digest);
    await this.checkRefs();
    await this.checkLeases();
    const errors = this.findings.filter((f) => f.severity === 'error' && !f.repaired).length;
    return { findings: this.findings, checked: this.checked, errors };
  }

  private async checkObjects(): Promise<void> {
    const all = [];
    for await (const o of this.store.listObjects()) all.push(o);
    for (const [i, { digest, path }] of all.entries()) {
      if (i % 256 === 0) this.opts.onProgress?.({ phase: 'objects', done: i, total: all.length });
      this.checked.objects++;
      if (!SHA256_HEX.test(digest)) {
        await this.report(
          'object-name-invalid',
          path,
          'not a content object name',
          undefined,
          this.remove(path),
        );
        continue;
      }
      const st = await fs.lstat(path);
      const actual = st.isFile() ? await hashFile(path) : undefined;
      if (actual !== digest) {
        const msg = actual ? `content hashes to ${actual}` : 'not a regular file';
        await this.report('object-digest-mismatch', path, msg, digest, this.remove(path));
        if (this.opts.repair) continue;
      } else if ((st.mode & 0o777) !== 0o444) {
        const msg = `mode ${(st.mode & 0o777).toString(8)}, expected 444`;
        await this.report('object-mode', path, msg, digest, () => fs.chmod(path, 0o444));
      }
      this.objects.add(digest);
    }
  }

  /** blobs/sha256 and indexes/sha256: files named by the sha256 of their content. */
  private async checkContentDir(what: 'blobs' | 'indexes', dir: string): Promise<void> {
    for (const name of (await fs.readdir(dir)).sort()) {
      const path = join(dir, name);
      const digest = `sha256:${name}`;
      this.checked[what]++;
      const data = await fs.readFile(path).catch(() => undefined);
      const actual = data && `sha256:${createHash('sha256').update(data).digest('hex')}`;
      if (!data || actual !== digest) {
        const kind = what === 'blobs' ? 'blob-digest-mismatch' : 'index-digest-mismatch';
        await this.report(
          kind,
          path,
          `content hashes to ${actual ?? '(unreadable)'}`,
          digest,
          this.remove(path),
        );
        if (this.opts.repair) continue;
      }
      if (what === 'blobs') {
        this.blobs.add(digest);
        continue;
      }
      try {
        this.indexes.set(digest, TreeIndex.decode(data!));
      } catch (err) {
        await this.report('index-corrupt', path, (err as Error).message, digest, this.remove(path));
      }
    }
  }

  private async checkRecord(digest: string): Promise<void> {
    const root = this.store.root;
    const path = imageRecordPath(root, digest);
    this.checked.images++;
    let record: ImageRecord;
    try {
      record = await readRecord(root, digest);
    } catch (err) {
      if (err instanceof NotFoundError) return;
      if (!(err instanceof DataLossError)) throw err;
      await this.report('record-invalid', path, err.message, digest, this.remove(path));
      return;
    }
    this.images.add(digest);
    const reimport = `re-import image ${digest} to restore it`;
    for (const blob of [record.manifestDigest, record.configDigest]) {
      if (!this.blobs.has(blob)) await this.report('blob-missing', blobPath(root, blob), reimport, blob);
    }
    const index = this.indexes.get(record.indexDigest);
    if (!index) {
      await this.report(
        'index-missing',
        treeIndexPath(root, record.indexDigest),
        reimport,
        record.indexDigest,
      );
      return;
    }
    for (let i = 0; i < index.objectTotal; i++) {
      const object = index.objectDigest(i);
      if (!this.objects.has(object)) {
        await this.report(
          'object-missing',
          this.store.objectPath(object),
          `needed by image ${digest}; ${reimport}`,
          object,
        );
      }
    }
  }

  private async checkRefs(): Promise<void> {
    for (const ref of await listRefs(this.store.root)) {
      this.checked.refs++;
      if (!ref.digest) {
        await this.report(
          'ref-invalid',
          ref.path,
          `name ${ref.name} does not hold a digest`,
          undefined,
          this.remove(ref.path),
        );
      } else if (!this.images.has(ref.digest)) {
        const msg = `name ${ref.name} points at missing image ${ref.digest}`;
        await this.report('ref-dangling', ref.path, msg, ref.digest, this.remove(ref.path));
      }
    }
  }

  private async checkLeases(): Promise<void> {
    for (const entry of await listLeaseEntries(this.store.root)) {
      this.checked.leases++;
      if (!entry.lease) {
        await this.report(
          'lease-invalid',
          entry.path,
          `lease ${entry.id} is not valid`,
          undefined,
          this.remove(entry.path),
        );
      } else if (!this.images.has(entry.lease.image)) {
        const msg = `lease ${entry.id} holds missing image ${entry.lease.image}`;
        await this.report('lease-dangling', entry.path, msg, entry.lease.image, this.remove(entry.path));
      } else if (entry.lease.holder && isStale(entry.lease)) {
        const msg = `lease ${entry.id} is held by ${describeHolder(entry.lease.holder)}, which no longer exists`;
        await this.report('stale-lease', entry.path, msg, entry.lease.image, this.remove(entry.path));
      }
    }
  }
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}
