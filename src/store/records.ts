// Image records (images/<manifest hex>.json), resolving user references to them, and loading
// an image's tree index. A record is written only after everything it points at is durable.
import { promises as fs, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageRecord } from '../schema/generated/image-record.js';
import { parseAndValidate, validate } from '../schema/validate.js';
import { native, nativeBuilt } from '../native-addon.js';
import { writeFileAtomic } from './atomic.js';
import { DataLossError, InvalidArgumentError, isErrno, NotFoundError } from '../errors.js';
import { imageRecordPath, ingestDir, treeIndexPath } from './layout.js';
import { listRefs, parseReference, readRef } from './refs.js';
import { TreeIndex } from './tree-index.js';

// The FUSE server maps its tree index rather than reading it: inline file contents (up to 4 KiB
// each, most of the index) then cost memory only once read. Without the addon (not built on
// this machine) the index is read whole, as before.
const mapFile: ((path: string) => Buffer) | undefined = nativeBuilt ? native.mmapFile : undefined;

/** A record plus the names (refs) that point at it. */
export interface ImageInfo extends ImageRecord {
  names: string[];
}

export async function readRecord(root: string, manifestDigest: string): Promise<ImageRecord> {
  const path = imageRecordPath(root, manifestDigest);
  let text: string;
  try {
    // Synchronous, as readRef: a record is ~1 KB and on every container's start path.
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) {
      throw new NotFoundError(`no image ${manifestDigest}`, { op: 'read-record', digest: manifestDigest });
    }
    throw err;
  }
  try {
    const record = parseAndValidate<ImageRecord>('image-record', text, `image record ${path}`);
    if (record.manifestDigest !== manifestDigest) throw new Error(`it names ${record.manifestDigest}`);
    return record;
  } catch (err) {
    throw new DataLossError(`image record ${path} is corrupt (run strata fsck): ${(err as Error).message}`, {
      op: 'read-record',
      path,
      digest: manifestDigest,
      cause: err,
    });
  }
}

export async function writeRecord(root: string, record: ImageRecord): Promise<void> {
  validate<ImageRecord>('image-record', record, `image record ${record.manifestDigest}`);
  const path = imageRecordPath(root, record.manifestDigest);
  await writeFileAtomic(ingestDir(root), path, JSON.stringify(record, null, 2) + '\n', { replace: true });
}

export async function removeRecord(root: string, manifestDigest: string): Promise<void> {
  await fs.rm(imageRecordPath(root, manifestDigest), { force: true });
}

/** Manifest digests of every record file under images/ (valid or not). */
export async function listRecordDigests(root: string): Promise<string[]> {
  const files = await fs.readdir(join(root, 'images'));
  return files
    .filter((f) => /^[0-9a-f]{64}\.json$/.test(f))
    .map((f) => `sha256:${f.slice(0, 64)}`)
    .sort();
}

async function namesByDigest(root: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const ref of await listRefs(root)) {
    if (!ref.digest) continue;
    out.set(ref.digest, [...(out.get(ref.digest) ?? []), ref.name]);
  }
  return out;
}

/** Every readable image, with its names. Unreadable records are fsck's business, not ls's. */
export async function listImages(root: string): Promise<ImageInfo[]> {
  const names = await namesByDigest(root);
  const out: ImageInfo[] = [];
  for (const digest of await listRecordDigests(root)) {
    try {
      out.push({ ...(await readRecord(root, digest)), names: names.get(digest) ?? [] });
    } catch (err) {
      if (!(err instanceof NotFoundError) && !(err instanceof DataLossError)) throw err;
    }
  }
  return out;
}

/** The names (refs) pointing at one image: reads every ref, so only commands that show names ask. */
export async function imageNames(root: string, manifestDigest: string): Promise<string[]> {
  return (await listRefs(root)).filter((r) => r.digest === manifestDigest).map((r) => r.name);
}

/**
 * Resolve a name, name:tag, full digest or unique short digest to its image record. A full digest
 * reads one record and a name one ref file (refs/<encoded name>) and one record; only a short
 * digest lists images/. No other ref is read: this is on every container's start path.
 */
export async function resolveImageRecord(root: string, ref: string): Promise<ImageRecord> {
  const parsed = parseReference(ref);
  let digest: string | undefined;
  if (parsed.kind === 'digest') digest = parsed.digest;
  else {
    if (parsed.name) digest = await readRef(root, parsed.name);
    if (!digest && parsed.shortDigest) {
      const matches = (await listRecordDigests(root)).filter((d) =>
        d.startsWith(`sha256:${parsed.shortDigest}`),
      );
      if (matches.length > 1) {
        throw new InvalidArgumentError(
          `short digest ${parsed.shortDigest} is ambiguous (${matches.length} images)`,
          { op: 'resolve', ref },
        );
      }
      digest = matches[0];
    }
    if (!digest) throw new NotFoundError(`no image named ${JSON.stringify(ref)}`, { op: 'resolve', ref });
  }
  const found = digest;
  return readRecord(root, found).catch((err: unknown) => {
    if (err instanceof NotFoundError && parsed.kind === 'name' && parsed.name) {
      throw new NotFoundError(
        `name ${parsed.name} points at missing image ${found} (run strata fsck --repair)`,
        { op: 'resolve', ref, digest: found },
      );
    }
    throw err;
  });
}

/** resolveImageRecord plus every name of the image (for inspect, tag and rm, which show them). */
export async function resolveImage(root: string, ref: string): Promise<ImageInfo> {
  const record = await resolveImageRecord(root, ref);
  return { ...record, names: await imageNames(root, record.manifestDigest) };
}

/**
 * The image's tree index, for the FUSE server. A read-only mapping (a read without the addon)
 * and a bounds-checking decode, which touches the inode, dirent and xattr tables but not the
 * pool's file contents; the sha256 is checked only with `verify` (fsck checks it; hashing reads
 * every page and would double the load time).
 */
export function loadTreeIndex(
  root: string,
  record: Pick<ImageRecord, 'indexDigest'>,
  opts: { verify?: boolean } = {},
): TreeIndex {
  const path = treeIndexPath(root, record.indexDigest);
  let buf: Buffer;
  try {
    buf = mapFile ? mapFile(path) : readFileSync(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) {
      throw new NotFoundError(`tree index ${record.indexDigest} is missing (run strata fsck)`, {
        op: 'load-index',
        path,
        digest: record.indexDigest,
      });
    }
    throw err;
  }
  if (opts.verify && TreeIndex.digest(buf) !== record.indexDigest) {
    throw new DataLossError(`tree index ${path} does not match its digest`, { op: 'load-index', path });
  }
  try {
    return TreeIndex.decode(buf);
  } catch (err) {
    throw new DataLossError(`tree index ${path}: ${(err as Error).message}`, {
      op: 'load-index',
      path,
      cause: err,
    });
  }
}
