// The store on disk. Every path is a pure function of a digest, a name or an id.
//
//   <root>/
//     objects/ab/cdef…            file contents, named by the sha256 of the content, mode 0444
//     blobs/sha256/<hex>          OCI JSON blobs kept per image (manifest, config), mode 0444
//     indexes/sha256/<hex>        tree indexes (binary, see tree-index.ts), named by their own sha256
//     images/<manifest hex>.json  image record: manifest, config and tree index digests, names
//     refs/<encoded name>         GC root: a name ("busybox:latest") -> manifest digest
//     leases/<id>.json            GC root: something in use (a running container) -> image
//     ingest/<random>/            scratch space of one import; never visible as content
//     store.lock                  flock: shared for readers and imports, exclusive for gc
//
// Compressed layer blobs are not kept: their content lives on as objects, and keeping the
// tarballs as well would double the store's size for no reader.
import { join } from 'node:path';
import { InvalidArgumentError } from '../errors.js';

export const SHA256_HEX = /^[0-9a-f]{64}$/;

/** "sha256:<hex>" -> "<hex>", refusing anything else (digests name paths: never trust them raw). */
export function sha256Hex(digest: string): string {
  const hex = digest.startsWith('sha256:') ? digest.slice(7) : digest;
  if (!SHA256_HEX.test(hex)) throw new InvalidArgumentError(`not a sha256 digest: ${JSON.stringify(digest)}`);
  return hex;
}

/** objects/<hex[0:2]>/<hex[2:]>; the addon's objectWrite (native/src/objects.c) builds the same
 * name from objectsDir(root). */
export function objectPath(root: string, digest: string): string {
  const hex = sha256Hex(digest);
  return join(objectsDir(root), hex.slice(0, 2), hex.slice(2));
}

export function objectsDir(root: string): string {
  return join(root, 'objects');
}

/** A manifest or config kept in the store (not a path inside an OCI layout: that is layoutBlobPath). */
export function blobPath(root: string, digest: string): string {
  return join(root, 'blobs', 'sha256', sha256Hex(digest));
}

export function treeIndexPath(root: string, digest: string): string {
  return join(root, 'indexes', 'sha256', sha256Hex(digest));
}

export function imageRecordPath(root: string, manifestDigest: string): string {
  return join(root, 'images', `${sha256Hex(manifestDigest)}.json`);
}

/** Names may contain '/' and ':'; encode them into one safe file name. */
export function encodeRefName(name: string): string {
  return encodeURIComponent(name).replace(/\./g, '%2E');
}

export function decodeRefName(file: string): string {
  return decodeURIComponent(file);
}

export function refPath(root: string, name: string): string {
  return join(root, 'refs', encodeRefName(name));
}

/** A lease id names a file in leases/: no leading dot (nor "." / ".."), at most 128 characters. */
export function isLeaseId(id: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(id);
}

export function leasePath(root: string, id: string): string {
  if (!isLeaseId(id)) {
    throw new InvalidArgumentError(`invalid lease id ${JSON.stringify(id)}`);
  }
  return join(root, 'leases', `${id}.json`);
}

export function ingestDir(root: string): string {
  return join(root, 'ingest');
}

/** A compiled seccomp filter (src/spec/seccomp-bpf.ts): derived data, safe to delete. */
export function seccompCachePath(root: string, keyHex: string): string {
  return join(root, 'cache', 'seccomp', `${sha256Hex(keyHex)}.bpf`);
}

export function lockPath(root: string): string {
  return join(root, 'store.lock');
}

/** The default store root: /var/lib/strata for root, $XDG_DATA_HOME/strata otherwise. */
export function defaultRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STRATA_ROOT) return env.STRATA_ROOT;
  if (process.getuid?.() === 0) return '/var/lib/strata';
  const home = env.HOME ?? '/tmp';
  return join(env.XDG_DATA_HOME ?? join(home, '.local', 'share'), 'strata');
}

/** flock held briefly while names and image records change (import's commit, tag, rm). */
export function refsLockPath(root: string): string {
  return join(root, 'refs.lock');
}
