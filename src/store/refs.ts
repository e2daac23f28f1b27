// Names: refs/<encoded name> holds the manifest digest a name points at. Refs are GC roots and
// the only place names live (records do not list them, so tagging never rewrites a record).
import { promises as fs, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncDir, writeFileAtomic } from './atomic.js';
import { InvalidArgumentError, isErrno } from '../errors.js';
import { decodeRefName, ingestDir, refPath, SHA256_HEX } from './layout.js';

const NAME =
  /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** "busybox" -> "busybox:latest"; "localhost:5000/x" -> "localhost:5000/x:latest". */
export function normalizeName(ref: string): string {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  const [repo, tag] = colon > slash ? [ref.slice(0, colon), ref.slice(colon + 1)] : [ref, 'latest'];
  if (!NAME.test(repo) || repo.length > 255) {
    throw new InvalidArgumentError(`invalid image name ${JSON.stringify(ref)}`, { op: 'parse-ref', ref });
  }
  if (!TAG.test(tag)) {
    throw new InvalidArgumentError(`invalid tag ${JSON.stringify(tag)} in ${JSON.stringify(ref)}`, {
      op: 'parse-ref',
      ref,
    });
  }
  return `${repo}:${tag}`;
}

export type ParsedRef =
  { kind: 'digest'; digest: string } | { kind: 'name'; name: string; shortDigest?: string };

/**
 * A reference given by a user: a full digest ("sha256:<hex>" or 64 hex), or a name, which may
 * also be a short digest (4-63 hex characters) when no such name exists.
 */
export function parseReference(ref: string): ParsedRef {
  const bare = ref.startsWith('sha256:') ? ref.slice(7) : ref;
  if (SHA256_HEX.test(bare)) return { kind: 'digest', digest: `sha256:${bare}` };
  if (ref.startsWith('sha256:')) {
    if (/^[0-9a-f]{4,63}$/.test(bare)) return { kind: 'name', name: '', shortDigest: bare };
    throw new InvalidArgumentError(`invalid digest ${JSON.stringify(ref)}`, { op: 'parse-ref', ref });
  }
  const shortDigest = /^[0-9a-f]{4,63}$/.test(ref) ? ref : undefined;
  try {
    return { kind: 'name', name: normalizeName(ref), shortDigest };
  } catch (err) {
    if (shortDigest) return { kind: 'name', name: '', shortDigest };
    throw err;
  }
}

function parseRefFile(text: string): string | undefined {
  const digest = text.trim();
  return /^sha256:[0-9a-f]{64}$/.test(digest) ? digest : undefined;
}

/** The manifest digest a name points at; undefined when there is no such name. */
export async function readRef(root: string, name: string): Promise<string | undefined> {
  try {
    // Synchronous: a ref is ~72 bytes, and readFile's four thread-pool trips (open, fstat, read,
    // close) each wait for the event loop: on a busy daemon they cost milliseconds of every
    // container's start (docs/architecture.md#start-path).
    return parseRefFile(readFileSync(refPath(root, name), 'utf8'));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

export async function setRef(root: string, name: string, digest: string): Promise<void> {
  await writeFileAtomic(ingestDir(root), refPath(root, name), `${digest}\n`, { replace: true });
}

/** Returns false when the name did not exist. */
export async function removeRef(root: string, name: string): Promise<boolean> {
  try {
    await fs.unlink(refPath(root, name));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
  await fsyncDir(join(root, 'refs'));
  return true;
}

export interface RefEntry {
  name: string;
  /** undefined when the ref file is unreadable (fsck reports it as ref-invalid). */
  digest: string | undefined;
  path: string;
}

export async function listRefs(root: string): Promise<RefEntry[]> {
  const dir = join(root, 'refs');
  const out: RefEntry[] = [];
  for (const file of (await fs.readdir(dir)).sort()) {
    const path = join(dir, file);
    let name: string;
    try {
      name = decodeRefName(file);
    } catch {
      name = file;
    }
    let digest: string | undefined;
    try {
      digest = parseRefFile(await fs.readFile(path, 'utf8'));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) continue;
      digest = undefined;
    }
    out.push({ name, digest, path });
  }
  return out;
}
