// Importing an image: open the source, apply its layers in order into one in-memory tree (file
// contents go to the object writer), then commit in an order that keeps every visible name
// valid: objects durable -> tree index -> manifest and config blobs -> image record -> refs.
// Everything is written in this import's ingest dir first; a failed or killed import leaves
// only that dir (removed here, or swept by gc) and unreferenced objects (swept by gc).
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Transform, pipeline, type Readable } from 'node:stream';
import { writeFileAtomic } from './atomic.js';
import { DataLossError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { blobPath, refsLockPath, treeIndexPath } from './layout.js';
import { lockFile, lockStore } from './lock.js';
import type { ImageRecord } from '../schema/generated/image-record.js';
import { loadTreeIndex, readRecord, writeRecord } from './records.js';
import { normalizeName, setRef } from './refs.js';
import type { Store } from './store.js';
import { encodeTreeIndex, newDir, type TreeNode } from './tree-index-encode.js';
import { TreeIndex } from './tree-index.js';
import type { ImageSource } from './source/types.js';
import type { ApplyLayer, OpenSource } from './types.js';
import { DEFAULT_MIN_FREE, SpaceFloor } from './space-floor.js';
import { findBaseImage, treeFromIndex } from './layer-reuse.js';
import { ObjectWriter, type SyncMode } from './writer.js';

export type ImportProgress =
  | { phase: 'waiting'; reason: string }
  | { phase: 'layer'; index: number; count: number; digest: string; bytes: number }
  | { phase: 'reuse'; layers: number; from: string }
  | { phase: 'commit' };

export interface ImportOptions {
  /** Name to give the image; default: the names the source carries. */
  name?: string;
  onProgress?: (p: ImportProgress) => void;
  sync?: SyncMode;
  inlineMax?: number;
  /** The source opener and layer applier; default: src/store/source and src/store/layer. */
  openSource?: OpenSource;
  applyLayer?: ApplyLayer;
  /**
   * Free space to leave on the store's filesystem: bytes, "512M", "2G" or "5%"; default
   * STRATA_MIN_FREE, else 1G (see space-floor.ts).
   */
  minFree?: string | number;
  /** Start from a stored image holding the same leading layers (default true; layer-reuse.ts). */
  reuseLayers?: boolean;
}

export interface ImportResult {
  record: ImageRecord;
  names: string[];
  /** true when the image was already complete in the store and only names were added. */
  existing: boolean;
  objectsWritten: number;
  objectsExisting: number;
  bytesWritten: number;
}

export async function importImage(
  store: Store,
  spec: string,
  opts: ImportOptions = {},
): Promise<ImportResult> {
  const lock = await lockStore(store.root, 'shared', {
    onWait: () => opts.onProgress?.({ phase: 'waiting', reason: 'waiting for gc to finish' }),
  });
  try {
    const source = await (opts.openSource ?? (await defaultOpenSource()))(spec);
    try {
      return await importFrom(store, source, opts);
    } finally {
      await source.close();
    }
  } finally {
    await lock.release();
  }
}

async function importFrom(store: Store, source: ImageSource, opts: ImportOptions): Promise<ImportResult> {
  const names = (opts.name ? [opts.name] : source.names).map(normalizeName);
  if (names.length === 0) {
    throw new FailedPreconditionError(`${source.description} carries no image name; give one with --name`, {
      op: 'import',
    });
  }
  const manifestDigest = source.manifestDigest;
  verifyContent(source.manifest, manifestDigest, 'manifest');
  const configDigest = configDigestOf(source);
  verifyContent(source.config, configDigest, 'config');

  const present = await completeRecord(store, manifestDigest);
  if (present) {
    await commitNames(store, present, names);
    return { record: present, names, existing: true, objectsWritten: 0, objectsExisting: 0, bytesWritten: 0 };
  }

  const floor = await SpaceFloor.start(
    store.root,
    opts.minFree ?? process.env.STRATA_MIN_FREE ?? DEFAULT_MIN_FREE,
    source.layers.reduce((n, l) => n + l.size, 0),
    source.description,
  );
  const work = join(store.ingestRoot, `import-${randomBytes(8).toString('hex')}`);
  await fs.mkdir(work, { recursive: true });
  const writer = new ObjectWriter(store.root, work, opts.sync ?? 'batch');
  try {
    await fs.writeFile(join(work, 'ref'), `${source.description}\n${process.pid}\n`);
    const applyLayer = opts.applyLayer ?? (await defaultApplyLayer());
    // Leading layers an image in the store already applied are not opened (not downloaded).
    const base =
      opts.reuseLayers === false
        ? undefined
        : await findBaseImage(
            store,
            source.layers.map((l) => l.diffId),
          );
    const root = base ? treeFromIndex(loadTreeIndex(store.root, base.record)) : newDir();
    if (base) opts.onProgress?.({ phase: 'reuse', layers: base.layers, from: base.record.manifestDigest });
    for (const [index, layer] of source.layers.entries()) {
      if (base && index < base.layers) continue;
      const progress = (bytes: number) =>
        opts.onProgress?.({
          phase: 'layer',
          index,
          count: source.layers.length,
          digest: layer.digest,
          bytes,
        });
      progress(0);
      await applyLayer(root, counting(await layer.open(), progress, floor), writer, {
        inlineMax: opts.inlineMax,
        layer: layer.digest,
        source: source.description,
      });
      await source.finishLayer?.(index, root);
    }
    opts.onProgress?.({ phase: 'commit' });
    await writer.commit();

    const index = encodeTreeIndex(root);
    const indexDigest = TreeIndex.digest(index);
    await putBlob(work, treeIndexPath(store.root, indexDigest), index, indexDigest);
    await putBlob(work, blobPath(store.root, manifestDigest), source.manifest, manifestDigest);
    await putBlob(work, blobPath(store.root, configDigest), source.config, configDigest);
    const tree = treeStats(root);
    const cfg = (source.configJson ?? {}) as { architecture?: unknown; os?: unknown };
    const manifest = source.manifestJson as { mediaType?: unknown };
    const record: ImageRecord = {
      schemaVersion: 1,
      manifestDigest,
      manifestMediaType:
        typeof manifest.mediaType === 'string'
          ? manifest.mediaType
          : 'application/vnd.oci.image.manifest.v1+json',
      configDigest,
      indexDigest,
      layers: source.layers.map((l) => ({
        digest: l.digest,
        mediaType: l.mediaType,
        size: l.size,
        diffId: l.diffId,
      })),
      fileCount: tree.files,
      objectCount: TreeIndex.decode(index).objectTotal,
      contentBytes: tree.bytes,
      indexBytes: index.length,
      ...(typeof cfg.architecture === 'string' ? { architecture: cfg.architecture } : {}),
      ...(typeof cfg.os === 'string' ? { os: cfg.os } : {}),
      source: source.description,
      created: new Date().toISOString(),
    };
    await commitNames(store, record, names, true);
    const { written, existing, bytesWritten } = writer.stats;
    return {
      record,
      names,
      existing: false,
      objectsWritten: written,
      objectsExisting: existing,
      bytesWritten,
    };
  } finally {
    await writer.abort();
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** The record of an image already complete in the store (index readable, every object present). */
async function completeRecord(store: Store, manifestDigest: string): Promise<ImageRecord | undefined> {
  let record: ImageRecord;
  let index: TreeIndex;
  try {
    record = await readRecord(store.root, manifestDigest);
    index = loadTreeIndex(store.root, record);
  } catch (err) {
    if (err instanceof NotFoundError || err instanceof DataLossError) return undefined;
    throw err;
  }
  for (const blob of [record.manifestDigest, record.configDigest]) {
    if (!(await fs.stat(blobPath(store.root, blob)).catch(() => undefined))) return undefined;
  }
  for (let i = 0; i < index.objectTotal; i++) {
    if (!(await store.hasObject(index.objectDigest(i)))) return undefined;
  }
  return record;
}

/** Record then names, under refs.lock so that `image rm` never sees a record without its names. */
async function commitNames(
  store: Store,
  record: ImageRecord,
  names: string[],
  writeIt = false,
): Promise<void> {
  const lock = await lockFile(refsLockPath(store.root), 'exclusive');
  try {
    if (writeIt) await writeRecord(store.root, record);
    for (const name of names) await setRef(store.root, name, record.manifestDigest);
  } finally {
    await lock.release();
  }
}

/** Content-addressed write that also heals a corrupt existing copy (these files are small). */
async function putBlob(tmpDir: string, path: string, data: Buffer, digest: string): Promise<void> {
  if (await writeFileAtomic(tmpDir, path, data, { mode: 0o444 })) return;
  const existing = await fs.readFile(path);
  if (sha256(existing) !== digest) await writeFileAtomic(tmpDir, path, data, { mode: 0o444, replace: true });
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function verifyContent(data: Buffer, digest: string, what: string): void {
  if (sha256(data) !== digest) {
    throw new DataLossError(`${what} ${digest} does not match its content`, { op: 'import', digest });
  }
}

function configDigestOf(source: ImageSource): string {
  const config = (source.manifestJson as { config?: { digest?: unknown } } | undefined)?.config;
  if (typeof config?.digest !== 'string') {
    throw new InvalidArgumentError(`manifest ${source.manifestDigest} has no config digest`, {
      op: 'import',
    });
  }
  return config.digest;
}

function treeStats(root: TreeNode): { files: number; bytes: number } {
  const seen = new Set<TreeNode>();
  let files = 0;
  let bytes = 0;
  // A loop, not recursion: a hostile layer chooses the depth.
  const stack = [root];
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    if (seen.has(node)) continue;
    seen.add(node);
    if (node.type === 'file') {
      files++;
      bytes += node.inline?.length ?? node.size ?? 0;
    }
    for (const kid of node.children?.values() ?? []) stack.push(kid);
  }
  return { files, bytes };
}

/** Reports progress, and holds each chunk of the layer until the free-space floor allows it. */
function counting(src: Readable, report: (bytes: number) => void, floor: SpaceFloor): Readable {
  let bytes = 0;
  let last = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (bytes - last >= 1 << 20) {
        last = bytes;
        report(bytes);
      }
      const waiting = floor.consume(chunk.length);
      if (waiting) waiting.then(() => done(null, chunk), done);
      else done(null, chunk);
    },
    flush(done) {
      report(bytes);
      done();
    },
  });
  return pipeline(src, counter, () => {
    // Errors reach the consumer through `counter`; nothing else to do here.
  });
}

// Loaded on first import, not with this module: `strata image ls` and the daemon import this file
// but never parse a tar stream.
async function defaultOpenSource(): Promise<OpenSource> {
  return (await import('./source/open-source.js')).openSource;
}

async function defaultApplyLayer(): Promise<ApplyLayer> {
  return (await import('./layer/apply-layer.js')).applyLayer;
}
