// An image in a registry as an ImageSource for the store's importer (src/store/import.ts):
// the manifest (through an index, by platform) and config are fetched and verified when the
// source opens; each layer streams from the network through the same verifying decompressor
// the archive sources use (src/store/source/layer-stream.ts) straight into the layer applier.
// While one layer is applied, the next PREFETCH-1 layers download at the same time into spool
// files in the import's ingest dir (hashed as they are written), so a many-layer image keeps
// several connections busy; the first layer never touches the disk.
import { createReadStream, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { DataLossError, InvalidArgumentError, NotFoundError, UnavailableError } from '../errors.js';
import type { OciImageIndex } from '../schema/generated/oci-image-index.js';
import type { OciImageManifest } from '../schema/generated/oci-image-manifest.js';
import { parseAndValidate } from '../schema/validate.js';
import { MAX_JSON_BLOB, parseManifestConfig } from '../store/source/blobs.js';
import { checkDigest, streamHashFor } from '../store/source/digest.js';
import { layerStream } from '../store/source/layer-stream.js';
import { isConfigType, isIndexType, isManifestType, layerCompression } from '../store/source/media-types.js';
import type { ImageSource, LayerRef, Platform } from '../store/source/types.js';
import { RegistryClient, type FetchedManifest, type TokenCache } from './client.js';
import { findCredentials, type CredentialOptions } from './credentials.js';
import type { Http } from './http.js';
import { hostPlatform, platformName, selectPlatform } from './platform.js';
import {
  DOCKER_HUB,
  formatReference,
  manifestReference,
  parseImageReference,
  qualify,
  storeName,
  type QualifiedReference,
} from './reference.js';
import { pullSources, type PullSource, type RegistriesConf } from './registries-conf.js';

/** Layers downloading at once (the one being applied plus the ones spooling ahead). */
export const PREFETCH = 3;
const MAX_INDEX_DEPTH = 4;

export type PullEvent =
  | {
      type: 'resolved';
      ref: string;
      from: string;
      digest: string;
      layers: { digest: string; size: number }[];
    }
  | { type: 'source-failed'; from: string; error: string }
  | { type: 'layer-bytes'; index: number; bytes: number; size: number }
  | { type: 'layer-done'; index: number; size: number; uncompressed: number; ms: number }
  | { type: 'retry'; index: number; offset: number; error: string }
  /** A layer an earlier, interrupted pull left in part: downloading goes on from `offset`. */
  | { type: 'resume'; index: number; offset: number; size: number };

export interface RegistrySourceOptions {
  http: Http;
  conf: RegistriesConf;
  platform?: Platform;
  /** undefined: registries.conf decides; false: no TLS verification (and http allowed). */
  tlsVerify?: boolean;
  credentials?: CredentialOptions;
  /**
   * Where layer blobs are kept while the pull runs (the store's ingest/): see KeptBlobs. A pull
   * that fails or is killed leaves them there, and the next pull of any image with those layers
   * resumes from them; the caller removes `kept` once the image is committed.
   */
  keepDir: string;
  /** Filled with the paths of this pull's kept blob files. */
  kept?: Set<string>;
  prefetch?: number;
  onEvent?: (e: PullEvent) => void;
}

interface Resolved {
  ref: QualifiedReference;
  source: PullSource;
  client: RegistryClient;
  top: FetchedManifest;
}

/** The registries to try for `text`, in order (several for an unqualified name). */
export function candidates(text: string, conf: RegistriesConf): QualifiedReference[] {
  const ref = parseImageReference(text);
  if (ref.registry !== undefined) return [ref as QualifiedReference];
  const search =
    conf.unqualifiedSearchRegistries.length > 0 ? conf.unqualifiedSearchRegistries : [DOCKER_HUB];
  return search.map((r) => qualify(ref, r));
}

async function resolve(
  text: string,
  opts: RegistrySourceOptions,
  signal: AbortSignal,
  tokens: TokenCache,
): Promise<Resolved> {
  return firstSource(text, opts, signal, tokens, async (client, ref, source) => ({
    ref,
    source,
    client,
    top: await client.manifest(manifestReference(ref)),
  }));
}

/** Options of listTags: the registry-facing half of RegistrySourceOptions. */
export type TagOptions = Pick<
  RegistrySourceOptions,
  'http' | 'conf' | 'tlsVerify' | 'credentials' | 'onEvent'
>;

/**
 * `--all-tags`: the tags of the repository `text` names (no tag or digest in it), from the
 * first source that answers (mirrors first, as for a pull), with the reference they belong to.
 */
export async function listTags(
  text: string,
  opts: TagOptions,
): Promise<{ repository: string; tags: string[] }> {
  const typed = parseImageReference(text);
  if (typed.tag !== undefined || typed.digest !== undefined) {
    throw new InvalidArgumentError(`${text}: --all-tags takes a repository without a tag or digest`, {
      op: 'pull',
      ref: text,
    });
  }
  const abort = new AbortController();
  return firstSource(text, opts, abort.signal, new Map(), async (client, ref) => ({
    repository: storeName({ ...ref, tag: undefined, digest: undefined }).replace(/:latest$/, ''),
    tags: await client.tags(),
  }));
}

async function firstSource<T>(
  text: string,
  opts: TagOptions,
  signal: AbortSignal,
  tokens: TokenCache,
  act: (client: RegistryClient, ref: QualifiedReference, source: PullSource) => Promise<T>,
): Promise<T> {
  const errors: string[] = [];
  let last: unknown;
  const refs = candidates(text, opts.conf);
  for (const ref of refs) {
    const sources = pullSources(opts.conf, ref, opts.tlsVerify);
    for (const source of sources) {
      const client = new RegistryClient(
        {
          registry: source.registry,
          repository: source.repository,
          insecure: source.insecure,
          http: opts.http,
          signal,
          credentials: () => findCredentials(source.registry, source.repository, opts.credentials),
        },
        tokens,
      );
      try {
        return await act(client, ref, source);
      } catch (err) {
        // A mirror that fails falls back to the next source; the registry itself only when
        // an unqualified name has more search registries to try.
        const searchable = err instanceof NotFoundError || err instanceof UnavailableError;
        if (!source.mirror && (refs.length === 1 || !searchable)) throw err;
        last = err;
        const msg = err instanceof Error ? err.message : String(err);
        errors.push(msg);
        opts.onEvent?.({
          type: 'source-failed',
          from: `${source.registry}/${source.repository}`,
          error: msg,
        });
      }
    }
  }
  const message = `${text}: no registry had it:\n  ${errors.join('\n  ')}`;
  if (last instanceof NotFoundError) throw new NotFoundError(message, { op: 'pull', ref: text });
  throw new UnavailableError(message, { op: 'pull', ref: text });
}

async function resolveManifest(
  r: Resolved,
  platform: Platform,
): Promise<{ desc: { digest: string; mediaType: string }; bytes: Buffer; json: OciImageManifest }> {
  let m = r.top;
  for (let depth = 0; isIndexType(m.mediaType); depth++) {
    if (depth >= MAX_INDEX_DEPTH)
      throw new InvalidArgumentError(`${r.client.description}: image indexes nested too deeply`, {
        op: 'pull',
      });
    const index = parseAndValidate<OciImageIndex>('oci-image-index', m.bytes, `image index ${m.digest}`);
    const usable = index.manifests.filter((d) => isManifestType(d.mediaType) || isIndexType(d.mediaType));
    const pick = selectPlatform(usable, platform, `image index ${m.digest} of ${r.client.description}`);
    checkDigest(pick.digest, `descriptor in image index ${m.digest}`);
    m = await r.client.manifest(pick.digest, {
      digest: pick.digest,
      size: pick.size,
      mediaType: pick.mediaType,
    });
  }
  if (!isManifestType(m.mediaType)) {
    throw new InvalidArgumentError(
      `${r.client.description}: ${m.digest} has media type ${m.mediaType}, not an image manifest`,
      {
        op: 'pull',
        digest: m.digest,
      },
    );
  }
  const json = parseAndValidate<OciImageManifest>('oci-image-manifest', m.bytes, `manifest ${m.digest}`);
  return { desc: { digest: m.digest, mediaType: m.mediaType }, bytes: m.bytes, json };
}

/**
 * The names a pulled image gets: the full one ("docker.io/library/debian:12"), and for a short
 * name as typed ("debian:12") that one too, so that `strata run debian:12` finds what
 * `strata image pull debian:12` fetched.
 */
function names(text: string, ref: QualifiedReference): string[] {
  const full = storeName(ref);
  const typed = parseImageReference(text);
  if (typed.registry !== undefined || (typed.tag === undefined && typed.digest !== undefined)) return [full];
  return [full, `${typed.repository}:${typed.tag ?? 'latest'}`];
}

/** Counts bytes going through, reporting every MiB and at the end. */
function counter(report: (n: number) => void): Transform {
  let n = 0;
  let last = 0;
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      n += chunk.length;
      if (n - last >= 1 << 20) {
        last = n;
        report(n);
      }
      cb(null, chunk);
    },
    flush(cb) {
      report(n);
      cb();
    },
  });
}

/**
 * Layer blobs kept under the store's ingest/ while a pull runs, so that an interrupted pull
 * resumes: `layer-<algo>-<hex>` is a whole blob whose digest matched, `layer-<algo>-<hex>.partial.*`
 * the first bytes of one (unverified until it is whole). A pull owns a partial file by renaming
 * it to its own name (pid and random), so two pulls never append to one file. Nothing here is
 * content: the importer reads these bytes through the same digest checks, fsck lists them as
 * stale ingest and gc removes them.
 */
class KeptBlobs {
  private readonly own = `${process.pid}-${randomBytes(6).toString('hex')}`;
  constructor(
    private readonly dir: string,
    private readonly kept = new Set<string>(),
  ) {}

  private base(digest: string): string {
    return join(this.dir, `layer-${digest.replace(':', '-')}`);
  }

  async complete(digest: string): Promise<string | undefined> {
    const path = this.base(digest);
    const st = await fs.stat(path).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    this.kept.add(path);
    return path;
  }

  /** Whether an earlier pull left this blob, whole or in part. */
  async has(digest: string): Promise<boolean> {
    const prefix = `layer-${digest.replace(':', '-')}`;
    const names = await fs.readdir(this.dir).catch(() => [] as string[]);
    return names.some((n) => n === prefix || n.startsWith(`${prefix}.partial.`));
  }

  /** This pull's partial file of `digest`: one left by another pull (taken over), or a new one. */
  async partial(digest: string): Promise<{ path: string; size: number }> {
    const prefix = `layer-${digest.replace(':', '-')}.partial.`;
    const mine = `${this.base(digest)}.partial.${this.own}`;
    this.kept.add(mine);
    await fs.mkdir(this.dir, { recursive: true });
    for (const name of await fs.readdir(this.dir)) {
      if (!name.startsWith(prefix)) continue;
      const from = join(this.dir, name);
      if (from === mine) continue;
      try {
        await fs.rename(from, mine); // atomic: one pull wins, the other finds it gone
      } catch {
        continue;
      }
      const st = await fs.lstat(mine);
      if (st.isFile()) return { path: mine, size: st.size };
      await fs.rm(mine, { recursive: true, force: true });
    }
    return { path: mine, size: 0 };
  }

  async finish(digest: string, partial: string): Promise<string> {
    const path = this.base(digest);
    await fs.rename(partial, path);
    this.kept.add(path);
    return path;
  }

  private readonly drops: Promise<unknown>[] = [];

  /** Forget this pull's partial file of `digest` (close() waits for it). */
  drop(digest: string): void {
    this.drops.push(fs.rm(`${this.base(digest)}.partial.${this.own}`, { force: true }).catch(() => {}));
  }

  settle(): Promise<unknown> {
    return Promise.all(this.drops);
  }
}

export async function openRegistrySource(text: string, opts: RegistrySourceOptions): Promise<ImageSource> {
  const abort = new AbortController();
  const tokens: TokenCache = new Map();
  const platform = opts.platform ?? hostPlatform();
  const r = await resolve(text, opts, abort.signal, tokens);
  const { desc, bytes, json } = await resolveManifest(r, platform);
  const where = `${r.source.registry}/${r.source.repository}`;
  if (!isConfigType(json.config.mediaType)) {
    throw new InvalidArgumentError(
      `manifest ${desc.digest} of ${where}: config has unsupported media type ${json.config.mediaType}`,
      {
        op: 'pull',
      },
    );
  }
  checkDigest(json.config.digest, `config of manifest ${desc.digest}`);
  const config = await r.client.smallBlob(json.config, MAX_JSON_BLOB, 'config');
  const configJson = parseManifestConfig(config, json.config.digest, desc.digest, json.layers.length, 'pull');
  const diffIds = configJson.rootfs.diff_ids;
  const descs = json.layers.map((l, i) => {
    checkDigest(l.digest, `layer ${i} of manifest ${desc.digest}`);
    checkDigest(diffIds[i], `diff_id ${i} of config ${json.config.digest}`);
    if (!Number.isSafeInteger(l.size) || l.size < 0)
      throw new InvalidArgumentError(`layer ${l.digest}: bad size ${l.size}`, { op: 'pull' });
    return { ...l, diffId: diffIds[i], compression: layerCompression(l.mediaType, l.digest) };
  });
  opts.onEvent?.({
    type: 'resolved',
    ref: formatReference(r.ref),
    from: where,
    digest: desc.digest,
    layers: descs.map((d) => ({ digest: d.digest, size: d.size })),
  });

  const prefetch = Math.max(1, opts.prefetch ?? PREFETCH);
  const spools = new Map<number, Promise<string>>();
  const rawStream = (i: number, start = 0): Readable => {
    const d = descs[i];
    const raw = r.client.blob(
      d,
      (offset, err) =>
        opts.onEvent?.({
          type: 'retry',
          index: i,
          offset,
          error: err instanceof Error ? err.message : String(err),
        }),
      start,
    );
    const count = counter((n) =>
      opts.onEvent?.({ type: 'layer-bytes', index: i, bytes: start + n, size: d.size }),
    );
    raw.on('error', (e) => count.destroy(e));
    count.on('close', () => raw.destroy());
    return raw.pipe(count);
  };
  const keep = new KeptBlobs(opts.keepDir, opts.kept);
  /** Layer i downloaded into its kept file (resuming a kept partial one), verified: its path. */
  const spool = (i: number): Promise<string> => {
    const d = descs[i];
    return (async () => {
      const done = await keep.complete(d.digest);
      if (done) return done;
      const part = await keep.partial(d.digest);
      // Hashed on the thread pool when the addon is built (digest.ts), beside the download.
      const hash = streamHashFor(d.digest);
      let n = 0;
      if (part.size > 0 && part.size <= d.size) {
        for await (const c of createReadStream(part.path)) await hash.update(c as Buffer);
        n = part.size;
        opts.onEvent?.({ type: 'resume', index: i, offset: n, size: d.size });
      }
      const verify = new Transform({
        transform(chunk: Buffer, _e, cb) {
          n += chunk.length;
          if (n > d.size)
            return cb(
              new DataLossError(
                `layer ${d.digest} from ${where}: more than the ${d.size} bytes its descriptor says`,
                { op: 'pull', digest: d.digest },
              ),
            );
          const wait = hash.update(chunk);
          if (!wait) return cb(null, chunk);
          verify.push(chunk);
          wait.then(() => cb(), cb);
        },
        flush(cb) {
          hash.digest().then((got) => {
            if (n !== d.size || got !== d.digest)
              return cb(
                new DataLossError(
                  `layer ${d.digest} from ${where}: ${n} bytes with digest ${got}, expected ${d.size} bytes`,
                  { op: 'pull', digest: d.digest },
                ),
              );
            cb();
          }, cb);
        },
      });
      const start = n;
      // A partial file longer than the blob is garbage: start it over.
      const fh = await fs.open(part.path, start > 0 ? 'a' : 'w', 0o600);
      try {
        await pipeline(rawStream(i, start), verify, fh.createWriteStream(), { signal: abort.signal });
      } catch (err) {
        if (err instanceof DataLossError) await fs.rm(part.path, { force: true });
        throw err;
      }
      return keep.finish(d.digest, part.path);
    })();
  };
  const startAhead = (i: number) => {
    for (let j = i + 1; j < Math.min(descs.length, i + prefetch); j++) {
      if (spools.has(j)) continue;
      const p = spool(j);
      p.catch(() => {}); // reported when layer j is opened
      spools.set(j, p);
    }
  };
  /**
   * Layer i straight from the network, its bytes also written to a kept partial file: a pull
   * killed here resumes from them. Returns the stream and what to do once it verified.
   */
  const streamKept = async (i: number): Promise<{ raw: Readable; done: () => Promise<void> }> => {
    const d = descs[i];
    const part = await keep.partial(d.digest);
    const file = await fs.open(part.path, 'w', 0o600);
    const out = file.createWriteStream({ highWaterMark: 1 << 20 });
    const raw = rawStream(i);
    const tee = new Transform({
      transform(chunk: Buffer, _e, cb) {
        if (out.write(chunk)) cb(null, chunk);
        else out.once('drain', () => cb(null, chunk));
      },
    });
    raw.on('error', (e) => tee.destroy(e));
    tee.on('close', () => {
      raw.destroy();
      if (!out.writableEnded) out.end();
    });
    out.on('error', (e) => tee.destroy(e));
    return {
      raw: raw.pipe(tee),
      done: async () => {
        if (!out.writableFinished) await new Promise<void>((ok, fail) => out.end(ok).once('error', fail));
        await keep.finish(d.digest, part.path);
      },
    };
  };

  const layers: LayerRef[] = descs.map((d, i) => ({
    digest: d.digest,
    mediaType: d.mediaType,
    size: d.size,
    diffId: d.diffId,
    open: async () => {
      startAhead(i);
      let spooled = spools.get(i);
      // A layer a killed pull left (whole or in part) is finished into its file first.
      if (!spooled && (await keep.has(d.digest))) spools.set(i, (spooled = spool(i)));
      let kept: { raw: Readable; done: () => Promise<void> } | undefined;
      const raw = spooled ? createReadStream(await spooled) : (kept = await streamKept(i)).raw;
      const started = Date.now();
      const out = layerStream(raw, {
        digest: d.digest,
        size: d.size,
        diffId: d.diffId,
        compression: d.compression,
        what: `layer ${d.digest} from ${where}`,
      });
      let un = 0;
      const timing = new Transform({
        transform(chunk: Buffer, _e, cb) {
          un += chunk.length;
          cb(null, chunk);
        },
        flush(cb) {
          opts.onEvent?.({
            type: 'layer-done',
            index: i,
            size: d.size,
            uncompressed: un,
            ms: Date.now() - started,
          });
          // Both digests matched (layerStream ends only then): the kept copy is whole.
          if (kept) kept.done().then(() => cb(), cb);
          else cb();
        },
      });
      out.on('error', (e) => {
        // Bytes that did not match the digest or do not decompress are not worth resuming.
        if (kept && (e instanceof DataLossError || e instanceof InvalidArgumentError)) keep.drop(d.digest);
        timing.destroy(e);
      });
      timing.on('close', () => {
        if (!out.readableEnded) out.destroy();
      });
      return out.pipe(timing);
    },
  }));

  return {
    description: `docker://${where}@${desc.digest}`,
    manifestDigest: desc.digest,
    manifest: bytes,
    config,
    manifestJson: json,
    configJson,
    layers,
    names: names(text, r.ref),
    close: async () => {
      abort.abort();
      await Promise.allSettled(spools.values());
      await keep.settle();
    },
  };
}

export { platformName };
