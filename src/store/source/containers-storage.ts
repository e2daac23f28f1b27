// An image from containers/storage (podman, buildah, CRI-O), read in place: no `podman save`.
//
//   <graphroot>/overlay-images/images.json     image records: id (= sha256 of the config), names,
//                                              top layer; big data in overlay-images/<id>/=BASE64KEY
//   <graphroot>/overlay-layers/layers.json     layer records: id, parent, diff-digest, diff-size
//   <graphroot>/overlay-layers/<id>.tar-split.gz   the layer's tar minus file contents
//   <graphroot>/overlay/<id>/diff/             the layer's files (vfs: vfs/dir/<id>/, the full tree)
//
// Each layer is fed to the applier as its original tar, rebuilt from the tar-split (every header,
// PAX record and padding byte, as newline-delimited JSON: type 2 = raw bytes, type 1 = a file whose
// `size` bytes come from the layer's directory) and the files of its directory. The rebuilt stream
// must hash to the layer's diff-digest, which must be the config's diff_id: so a file changed in
// the diff directory since the pull, or a tar-split that does not belong to it, is refused, and
// the image's tree is exactly what an import of the same image's archive gives (same headers:
// mtimes, owners, xattrs, hard links, and whiteouts in the tar's `.wh.` form, which the tar-split
// keeps even though the overlay directory holds them as 0:0 character devices and
// trusted.overlay.opaque xattrs). The config is podman's own bytes, so strata's config digest is
// podman's image id.
import { createReadStream } from 'node:fs';
import { constants, lstat, open, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { execa } from 'execa';
import {
  DataLossError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  isErrno,
} from '../../errors.js';
import type { ContainersStorageContainers } from '../../schema/generated/containers-storage-containers.js';
import type { ContainersStorageImages } from '../../schema/generated/containers-storage-images.js';
import type { ContainersStorageLayers } from '../../schema/generated/containers-storage-layers.js';
import type { OciImageConfig } from '../../schema/generated/oci-image-config.js';
import type { OciImageManifest } from '../../schema/generated/oci-image-manifest.js';
import type { TreeNode } from '../tree-index-encode.js';
import { parseAndValidate } from '../../schema/validate.js';
import { MAX_JSON_BLOB } from './blobs.js';
import { checkDigest, sha256Digest } from './digest.js';
import { layerStream } from './layer-stream.js';
import { DOCKER_MANIFEST, OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST } from './media-types.js';
import type { ImageSource, LayerRef } from './types.js';

export const CONTAINERS_STORAGE_DEFAULT_ROOT = '/var/lib/containers/storage';
export const STORAGE_CONF = '/etc/containers/storage.conf';
/** images.json / layers.json larger than this are refused (a store of thousands of images is ~MBs). */
const MAX_RECORDS_JSON = 64 << 20;
/** One tar-split line (a header segment with its PAX records) may not exceed this. */
const MAX_SPLIT_LINE = 16 << 20;
/** Layers deeper than this are refused (an image has tens; a loop would never end). */
const MAX_LAYERS = 1000;
const READ_CHUNK = 256 * 1024;

export type StorageDriver = 'overlay' | 'vfs';

export interface ContainersStorageOptions {
  /** The graph root (default: storage.conf's graphroot, else /var/lib/containers/storage). */
  root?: string;
  /** storage.conf to read graphroot and driver from (default $CONTAINERS_STORAGE_CONF, else /etc/...). */
  storageConf?: string;
  /** A name as podman lists it (`busybox` finds docker.io/library/busybox:latest), an image id or
   * a unique prefix of one (at least 4 hex digits), or sha256:ID. */
  name: string;
}

type ImageRec = ContainersStorageImages[number];
type LayerRec = ContainersStorageLayers[number];

function fail(msg: string, extra: Record<string, unknown> = {}): never {
  throw new InvalidArgumentError(msg, { op: 'import', ...extra });
}

/** graphroot and driver from a storage.conf ([storage] graphroot = "…", driver = "…"), if set. */
export function parseStorageConf(text: string): { graphroot?: string; driver?: string } {
  let section = '';
  const out: { graphroot?: string; driver?: string } = {};
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^\s+|\s+$/g, '');
    const sec = /^\[\s*([^\]]+?)\s*\]$/.exec(line);
    if (sec) {
      section = sec[1];
      continue;
    }
    const kv = /^(graphroot|driver)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)')/.exec(line);
    if (section === 'storage' && kv) out[kv[1] as 'graphroot' | 'driver'] = kv[3] ?? JSON.parse(`"${kv[2]}"`);
  }
  return out;
}

async function graphRoot(opts: ContainersStorageOptions): Promise<{ root: string; driver?: string }> {
  const confPath = opts.storageConf ?? process.env.CONTAINERS_STORAGE_CONF ?? STORAGE_CONF;
  let conf: { graphroot?: string; driver?: string } = {};
  try {
    conf = parseStorageConf(await readFile(confPath, 'utf8'));
  } catch (err) {
    if (!isErrno(err, 'ENOENT') || opts.storageConf !== undefined) throw err;
  }
  return { root: opts.root ?? conf.graphroot ?? CONTAINERS_STORAGE_DEFAULT_ROOT, driver: conf.driver };
}

async function readBounded(path: string, max: number, what: string): Promise<Buffer> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    if (isErrno(err, 'ENOENT'))
      throw new NotFoundError(`${what}: ${path} does not exist`, { op: 'import', path, cause: err });
    throw err;
  }
  if (size > max) fail(`${what}: ${path} is too large (${size} bytes)`, { path });
  return readFile(path);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Which driver's records the graph root holds (the configured one first). */
async function detectDriver(root: string, configured: string | undefined): Promise<StorageDriver> {
  for (const d of [configured, 'overlay', 'vfs']) {
    if ((d === 'overlay' || d === 'vfs') && (await exists(join(root, `${d}-images`, 'images.json'))))
      return d;
  }
  if (configured && configured !== 'overlay' && configured !== 'vfs') {
    throw new FailedPreconditionError(
      `containers-storage at ${root}: the ${configured} driver is not supported (overlay and vfs are)`,
      { op: 'import', path: root },
    );
  }
  throw new NotFoundError(`containers-storage at ${root} holds no images (no overlay-images/images.json)`, {
    op: 'import',
    path: root,
  });
}

/** The image `name` names: a name (with docker.io/library/, localhost/, :latest tried), an id, a prefix. */
export function findImage(images: ImageRec[], name: string): ImageRec | undefined {
  const withTag = /:[^/:]+$/.test(name) ? [name] : [name, `${name}:latest`];
  const wanted = new Set(
    withTag.flatMap((n) => [n, `docker.io/library/${n}`, `docker.io/${n}`, `localhost/${n}`]),
  );
  const byName = images.find((img) => (img.names ?? []).some((n) => wanted.has(n)));
  if (byName) return byName;
  const hex = name.startsWith('sha256:') ? name.slice(7) : name;
  if (!/^[a-f0-9]{4,64}$/.test(hex)) return undefined;
  const matches = images.filter((img) => img.id.startsWith(hex));
  if (matches.length > 1)
    fail(`image id prefix ${hex} is ambiguous in containers-storage (${matches.length} images)`);
  return matches[0];
}

/** The image's layers, base first, following `parent` from its top layer. */
function layerChain(layers: LayerRec[], top: string, where: string): LayerRec[] {
  const byId = new Map(layers.map((l) => [l.id, l]));
  const chain: LayerRec[] = [];
  for (let id: string | undefined = top; id; id = byId.get(id)?.parent || undefined) {
    const rec = byId.get(id);
    if (!rec) throw new NotFoundError(`${where}: layer ${id} is not in layers.json`, { op: 'import' });
    if (chain.length >= MAX_LAYERS)
      fail(`${where}: more than ${MAX_LAYERS} layers (or a parent loop) at ${id}`);
    chain.push(rec);
  }
  return chain.reverse();
}

/** Splits a byte stream into lines (without the newline), refusing a line over MAX_SPLIT_LINE. */
class Lines extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  constructor(private readonly what: string) {
    super({ readableObjectMode: true });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      this.pending.push(chunk.subarray(start, nl));
      this.push(Buffer.concat(this.pending));
      this.pending = [];
      this.pendingBytes = 0;
      start = nl + 1;
    }
    if (start < chunk.length) {
      this.pending.push(chunk.subarray(start));
      this.pendingBytes += chunk.length - start;
      if (this.pendingBytes > MAX_SPLIT_LINE) {
        cb(
          new InvalidArgumentError(`${this.what}: a line longer than ${MAX_SPLIT_LINE} bytes`, {
            op: 'import',
          }),
        );
        return;
      }
    }
    cb();
  }
  override _flush(cb: TransformCallback): void {
    if (this.pendingBytes > 0) this.push(Buffer.concat(this.pending));
    cb();
  }
}

interface SplitEntry {
  type: number;
  name?: string;
  name_raw?: string;
  size?: number;
  payload?: string | null;
}

/**
 * Opens a file of a layer's directory by its tar name without following a symlink anywhere: each
 * directory on the way is lstat'ed once (cached), the file itself opened O_NOFOLLOW.
 */
class LayerDir {
  private readonly dirsChecked = new Set<string>();
  constructor(
    readonly dir: string,
    private readonly what: string,
  ) {}

  private components(name: Buffer): Buffer[] {
    const parts: Buffer[] = [];
    let start = 0;
    for (let i = 0; i <= name.length; i++) {
      if (i === name.length || name[i] === 0x2f) {
        const part = name.subarray(start, i);
        start = i + 1;
        if (part.length === 0 || (part.length === 1 && part[0] === 0x2e)) continue;
        if (part.length === 2 && part[0] === 0x2e && part[1] === 0x2e)
          fail(`${this.what}: entry ${JSON.stringify(name.toString())} leaves the layer`);
        if (part.includes(0)) fail(`${this.what}: entry name with a NUL byte`);
        parts.push(part);
      }
    }
    if (parts.length === 0) fail(`${this.what}: a file entry without a name`);
    return parts;
  }

  async *read(name: Buffer, size: number): AsyncGenerator<Buffer> {
    const parts = this.components(name);
    let path: Buffer = Buffer.from(this.dir);
    for (const [i, part] of parts.entries()) {
      path = Buffer.concat([path, Buffer.from('/'), part]);
      if (i === parts.length - 1) break;
      const key = path.toString('latin1');
      if (this.dirsChecked.has(key)) continue;
      const st = await lstat(path).catch((err: unknown) => {
        throw this.missing(name, err);
      });
      if (!st.isDirectory())
        fail(`${this.what}: ${JSON.stringify(name.toString())} goes through a non-directory`);
      this.dirsChecked.add(key);
    }
    const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW).catch((err: unknown) => {
      throw this.missing(name, err);
    });
    try {
      const st = await fh.stat();
      if (!st.isFile() || st.size !== size) {
        throw new DataLossError(
          `${this.what}: ${JSON.stringify(name.toString())} is ${st.isFile() ? `${st.size} bytes` : 'not a regular file'} in ${this.dir}, its tar-split says ${size} bytes: the layer changed since it was stored`,
          { op: 'import', path: path.toString() },
        );
      }
      let left = size;
      while (left > 0) {
        const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, left));
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0)
          throw new DataLossError(`${this.what}: ${JSON.stringify(name.toString())} shrank while read`, {
            op: 'import',
          });
        left -= bytesRead;
        yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
  }

  private missing(name: Buffer, err: unknown): Error {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR') || isErrno(err, 'ELOOP')) {
      return new DataLossError(
        `${this.what}: ${JSON.stringify(name.toString())} is missing from ${this.dir} (or is a symlink where a file should be)`,
        { op: 'import', cause: err },
      );
    }
    return err as Error;
  }
}

/** The layer's original tar: tar-split segments, with file contents from `dir`. Unverified: the
 * caller checks the whole stream against the layer's diff-digest. */
export function tarFromSplit(splitFile: string, dir: string, what: string): Readable {
  const layerDir = new LayerDir(dir, what);
  async function* generate(): AsyncGenerator<Buffer> {
    const lines = new Lines(`${what}: ${splitFile}`);
    pipeline(createReadStream(splitFile), createGunzip(), lines, () => {
      // An error destroys `lines` with it: the loop below throws it.
    });
    for await (const line of lines as AsyncIterable<Buffer>) {
      if (line.length === 0) continue;
      let e: SplitEntry;
      try {
        e = JSON.parse(line.toString('utf8')) as SplitEntry;
      } catch {
        fail(`${what}: ${splitFile} has a line that is not JSON`);
      }
      if (e.type === 2) {
        if (typeof e.payload === 'string' && e.payload.length > 0) yield Buffer.from(e.payload, 'base64');
      } else if (e.type === 1) {
        const size = e.size ?? 0;
        if (!Number.isSafeInteger(size) || size < 0)
          fail(`${what}: ${splitFile}: bad size ${String(e.size)}`);
        if (size === 0) continue;
        const name =
          typeof e.name_raw === 'string'
            ? Buffer.from(e.name_raw, 'base64')
            : Buffer.from(e.name ?? '', 'utf8');
        yield* layerDir.read(name, size);
      } else fail(`${what}: ${splitFile}: unknown entry type ${String(e.type)}`);
    }
  }
  return Readable.from(generate(), { objectMode: false });
}

function bigDataPath(root: string, driver: StorageDriver, id: string, key: string): string {
  return join(root, `${driver}-images`, id, `=${Buffer.from(key).toString('base64')}`);
}

function layerDirOf(root: string, driver: StorageDriver, id: string): string {
  return driver === 'overlay' ? join(root, 'overlay', id, 'diff') : join(root, 'vfs', 'dir', id);
}

/** podman's own manifest when it lists exactly these uncompressed layers (so its digest is kept),
 * else an OCI manifest made for them. */
async function manifestFor(
  root: string,
  driver: StorageDriver,
  img: ImageRec,
  config: Buffer,
  layers: { diffId: string; size: number }[],
): Promise<{ bytes: Buffer; json: OciImageManifest }> {
  const configDigest = `sha256:${img.id}`;
  if ((img['big-data-names'] ?? []).includes('manifest')) {
    try {
      const bytes = await readBounded(
        bigDataPath(root, driver, img.id, 'manifest'),
        MAX_JSON_BLOB,
        'manifest',
      );
      const json = parseAndValidate<OciImageManifest>(
        'oci-image-manifest',
        bytes,
        `manifest of image ${img.id}`,
      );
      const sameLayers =
        json.layers.length === layers.length &&
        json.layers.every(
          (l, i) =>
            l.digest === layers[i].diffId &&
            l.size === layers[i].size &&
            (l.mediaType === OCI_LAYER_TAR || l.mediaType === 'application/vnd.docker.image.rootfs.diff.tar'),
        );
      const type = json.mediaType ?? OCI_MANIFEST;
      if (
        sameLayers &&
        json.config.digest === configDigest &&
        (type === OCI_MANIFEST || type === DOCKER_MANIFEST)
      )
        return { bytes, json };
    } catch (err) {
      if (!(err instanceof InvalidArgumentError) && !(err instanceof NotFoundError)) throw err;
    }
  }
  const json: OciImageManifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
    layers: layers.map((l) => ({ mediaType: OCI_LAYER_TAR, digest: l.diffId, size: l.size })),
  };
  return { bytes: Buffer.from(JSON.stringify(json)), json };
}

export async function openContainersStorageImage(opts: ContainersStorageOptions): Promise<ImageSource> {
  const { root, driver: configured } = await graphRoot(opts);
  const driver = await detectDriver(root, configured);
  const where = `containers-storage ${root} (${driver})`;
  const images = parseAndValidate<ContainersStorageImages>(
    'containers-storage-images',
    await readBounded(join(root, `${driver}-images`, 'images.json'), MAX_RECORDS_JSON, 'images.json'),
    `${where} images.json`,
  );
  const img = findImage(images, opts.name);
  if (!img) {
    throw new NotFoundError(`${where} has no image ${JSON.stringify(opts.name)}`, {
      op: 'import',
      ref: opts.name,
    });
  }
  const configDigest = `sha256:${img.id}`;
  const config = await readBounded(
    bigDataPath(root, driver, img.id, configDigest),
    MAX_JSON_BLOB,
    `config of image ${img.id}`,
  );
  if (sha256Digest(config) !== configDigest) {
    throw new DataLossError(`${where}: the config of image ${img.id} does not hash to its id`, {
      op: 'import',
      digest: configDigest,
    });
  }
  const configJson = parseAndValidate<OciImageConfig>('oci-image-config', config, `config ${configDigest}`);
  const layerRecs = parseAndValidate<ContainersStorageLayers>(
    'containers-storage-layers',
    await readBounded(join(root, `${driver}-layers`, 'layers.json'), MAX_RECORDS_JSON, 'layers.json'),
    `${where} layers.json`,
  );
  const chain = layerChain(layerRecs, img.layer, `${where} image ${img.id}`);
  const diffIds = configJson.rootfs.diff_ids;
  if (diffIds.length !== chain.length) {
    fail(
      `${where}: image ${img.id} has ${chain.length} layers but its config lists ${diffIds.length} diff_ids`,
    );
  }
  const layers: LayerRef[] = [];
  const overlayForm = new Map<number, { dir: string; what: string }>();
  for (const [i, rec] of chain.entries()) {
    const what = `layer ${rec.id} of image ${img.id} in ${where}`;
    const diffId = checkDigest(diffIds[i], `diff_id ${i} of config ${configDigest}`);
    if (rec['diff-digest'] !== diffId) {
      fail(`${what}: its diff-digest ${String(rec['diff-digest'])} is not the config's diff_id ${diffId}`);
    }
    const size = rec['diff-size'];
    if (size === undefined || size < 0) fail(`${what}: no diff-size recorded`);
    const split = join(root, `${driver}-layers`, `${rec.id}.tar-split.gz`);
    const dir = layerDirOf(root, driver, rec.id);
    if (!(await exists(split))) {
      if (driver !== 'overlay') {
        throw new FailedPreconditionError(`${what}: no tar-split (${split}) to rebuild the layer from`, {
          op: 'import',
          path: split,
        });
      }
      layers.push(overlayDirLayer(dir, diffId, size, what));
      overlayForm.set(i, { dir, what });
      continue;
    }
    layers.push({
      digest: diffId,
      mediaType: OCI_LAYER_TAR,
      size,
      diffId,
      open: async () =>
        layerStream(tarFromSplit(split, dir, what), {
          digest: diffId,
          size,
          diffId,
          compression: 'none',
          what,
        }),
    });
  }
  const manifest = await manifestFor(root, driver, img, config, layers);
  return {
    description: `containers-storage:${opts.name} (${where}, image ${img.id})`,
    manifestDigest: sha256Digest(manifest.bytes),
    manifest: manifest.bytes,
    config,
    manifestJson: manifest.json,
    configJson,
    layers,
    names: (img.names ?? []).filter((n) => n !== ''),
    finishLayer: async (index, root) => {
      const o = overlayForm.get(index);
      if (o) await applyOverlayForm(root, o.dir, o.what);
    },
    close: async () => {},
  };
}

/**
 * A layer with no tar-split (containers/storage writes one for every layer it applies from a
 * tar, but not, e.g., for partial pulls): its overlay diff directory packed by GNU tar (PAX, every
 * xattr except trusted.overlay.*, numeric owners, hard links). Nothing to verify it against: its
 * `diffId` is the config's, taken on trust (the storage is root's). The directory holds overlay's
 * own whiteout form, which `applyOverlayForm` (given as the importer's applyLayer, see
 * overlayAwareApply) maps to the store's after the tar is applied.
 */
export function overlayDirLayer(dir: string, diffId: string, size: number, what: string): LayerRef {
  return {
    digest: diffId,
    mediaType: OCI_LAYER_TAR,
    size,
    diffId,
    open: async () => {
      await stat(dir).catch((err: unknown) => {
        throw new NotFoundError(`${what}: its diff directory ${dir} is missing`, {
          op: 'import',
          path: dir,
          cause: err,
        });
      });
      // The names in the directory, not '.': containers/storage does not give the diff directory
      // itself the layer's root entry (its mode and mtime are the driver's), so the layer's root
      // keeps what the layers below gave it.
      const names = await readdir(dir);
      if (names.length === 0) return Readable.from([Buffer.alloc(1024)]); // an empty tar
      const tar = execa(
        'tar',
        [
          '--create',
          '--file=-',
          '--format=posix',
          '--numeric-owner',
          '--xattrs',
          '--xattrs-include=*',
          '--xattrs-exclude=trusted.overlay.*',
          '--sort=name',
          `--directory=${dir}`,
          '--null',
          '--verbatim-files-from',
          '--files-from=-',
        ],
        {
          input: names.map((n) => `./${n}\0`).join(''),
          stdout: 'pipe',
          stderr: 'pipe',
          buffer: { stdout: false, stderr: true },
          maxBuffer: 1 << 20,
        },
      );
      const out = tar.stdout;
      tar.catch((err: unknown) => {
        const e = err as { stderr?: string; shortMessage?: string };
        out.destroy(
          new InvalidArgumentError(
            `${what}: tar of ${dir} failed: ${(e.stderr ?? '').trim() || e.shortMessage}`,
            {
              op: 'import',
              path: dir,
              cause: err,
            },
          ),
        );
      });
      return out;
    },
  };
}

/** Decodes getfattr's octal escapes (\\012 for a newline in a name). */
function unescapeGetfattr(s: string): Buffer {
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (
      raw[i] === 0x5c &&
      i + 3 < raw.length + 0 &&
      /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString())
    ) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString(), 8));
      i += 3;
    } else bytes.push(raw[i]);
  }
  return Buffer.from(bytes);
}

/** What overlay's form says about a diff directory: opaque dirs and whiteouts (relative paths). */
export async function scanOverlayForm(
  dir: string,
  what: string,
): Promise<{ opaque: string[]; whiteouts: string[] }> {
  const opaque: string[] = [];
  // getfattr -R: one process for the whole tree; only entries with a trusted.overlay.* xattr print.
  const r = await execa(
    'getfattr',
    ['-R', '-P', '--absolute-names', '-d', '-m', '^trusted\\.overlay\\.', dir],
    {
      stdin: 'ignore',
      reject: false,
      maxBuffer: 64 << 20,
    },
  );
  if (r.exitCode !== 0 && (r.stdout ?? '') === '' && (r.stderr ?? '') !== '') {
    throw new InvalidArgumentError(`${what}: getfattr of ${dir} failed: ${String(r.stderr).trim()}`, {
      op: 'import',
    });
  }
  let file: string | undefined;
  for (const line of String(r.stdout).split('\n')) {
    if (line.startsWith('# file: ')) file = unescapeGetfattr(line.slice(8)).toString('utf8');
    else if (file !== undefined && /^trusted\.overlay\.opaque="y"$/.test(line))
      opaque.push(relativeTo(dir, file));
    else if (file !== undefined && /^trusted\.overlay\.(redirect|metacopy|origin)=/.test(line)) {
      throw new FailedPreconditionError(
        `${what}: ${file} has ${line.split('=')[0]} (an overlay redirect or metacopy layer): not supported`,
        { op: 'import', path: file },
      );
    }
  }
  const whiteouts: string[] = [];
  // Character devices (few in a layer), then lstat: a whiteout is 0:0.
  const walk = await execa('find', [dir, '-type', 'c', '-print0'], {
    stdin: 'ignore',
    maxBuffer: 64 << 20,
    encoding: 'buffer',
  });
  for (const p of Buffer.from(walk.stdout).toString('utf8').split('\0').filter(Boolean)) {
    const st = await lstat(p);
    if (st.isCharacterDevice() && st.rdev === 0) whiteouts.push(relativeTo(dir, p));
  }
  return { opaque, whiteouts };
}

function relativeTo(dir: string, path: string): string {
  if (path === dir) return '';
  if (!path.startsWith(dir + '/'))
    throw new InvalidArgumentError(`${path} is not under ${dir}`, { op: 'import' });
  return path.slice(dir.length + 1);
}

function lookupDir(root: TreeNode, rel: string, what: string): TreeNode {
  let node = root;
  for (const part of rel.split('/').filter((p) => p !== '' && p !== '.')) {
    const next = node.children?.get(part);
    if (!next || next.type !== 'dir') fail(`${what}: ${rel} is not a directory of the applied layer`);
    node = next;
  }
  return node;
}

/**
 * After an overlay-form layer's tar is applied onto `root`: each whiteout (a 0:0 character device
 * in the diff dir) removes its name, and each opaque directory keeps only the names the diff
 * directory has there (the lower layers' are hidden) — the store's whiteout semantics.
 */
export async function applyOverlayForm(root: TreeNode, dir: string, what: string): Promise<void> {
  const { opaque, whiteouts } = await scanOverlayForm(dir, what);
  for (const rel of opaque) {
    const node = lookupDir(root, rel, what);
    const keep = new Set(await readdir(join(dir, rel)));
    for (const name of [...(node.children?.keys() ?? [])]) if (!keep.has(name)) node.children?.delete(name);
  }
  for (const rel of whiteouts) {
    const slash = rel.lastIndexOf('/');
    const parent = lookupDir(root, slash === -1 ? '' : rel.slice(0, slash), what);
    parent.children?.delete(rel.slice(slash + 1));
  }
}

export interface ContainersStorageContainerImage {
  /** The image id (sha256 hex of its config): strata's config digest is `sha256:<imageId>`. */
  imageId: string;
  /** The name podman created the container from, when its record says. */
  imageName?: string;
  /** The graph root and driver the bundle belongs to. */
  root: string;
  driver: StorageDriver;
}

/**
 * The image of the podman container whose bundle is `bundle`: podman's bundles are
 * `<graphroot>/<driver>-containers/<id>/userdata`, and containers.json there records each
 * container's image id. undefined when the bundle is not one of containers/storage's, or the
 * container has no image (a rootfs container).
 */
export async function containersStorageImageOfBundle(
  bundle: string,
): Promise<ContainersStorageContainerImage | undefined> {
  const m = /^(.*)\/(overlay|vfs)-containers\/([a-f0-9]{64})\/userdata\/?$/.exec(bundle);
  if (!m) return undefined;
  const [, root, driver, id] = m;
  const file = join(root, `${driver}-containers`, 'containers.json');
  let bytes: Buffer;
  try {
    bytes = await readBounded(file, MAX_RECORDS_JSON, 'containers.json');
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
  const records = parseAndValidate<ContainersStorageContainers>(
    'containers-storage-containers',
    bytes,
    `containers-storage ${root} containers.json`,
  );
  const rec = records.find((c) => c.id === id);
  if (!rec || rec.image === undefined || !/^[a-f0-9]{64}$/.test(rec.image)) return undefined;
  let imageName: string | undefined;
  try {
    const meta = JSON.parse(rec.metadata ?? '{}') as { 'image-name'?: unknown };
    if (typeof meta['image-name'] === 'string' && meta['image-name'] !== '') imageName = meta['image-name'];
  } catch {
    // metadata is podman's free-form JSON string: without it, the id is enough
  }
  return { imageId: rec.image, imageName, root, driver: driver as StorageDriver };
}
