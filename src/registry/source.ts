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
import { createHash } from 'node:crypto';
import { DataLossError, InvalidArgumentError, NotFoundError, UnavailableError } from '../errors.js';
import type { OciImageConfig } from '../schema/generated/oci-image-config.js';
import type { OciImageIndex } from '../schema/generated/oci-image-index.js';
import type { OciImageManifest } from '../schema/generated/oci-image-manifest.js';
import { parseAndValidate } from '../schema/validate.js';
import { MAX_JSON_BLOB } from '../store/source/blobs.js';
import { checkDigest } from '../store/source/digest.js';
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
  | { type: 'retry'; index: number; offset: number; error: string };

export interface RegistrySourceOptions {
  http: Http;
  conf: RegistriesConf;
  platform?: Platform;
  /** undefined: registries.conf decides; false: no TLS verification (and http allowed). */
  tlsVerify?: boolean;
  credentials?: CredentialOptions;
  /** Where layers downloading ahead are spooled (this pull's dir under the store's ingest/). */
  spoolDir: string;
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
        const top = await client.manifest(manifestReference(ref));
        return { ref, source, client, top };
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
  const configJson = parseAndValidate<OciImageConfig>(
    'oci-image-config',
    config,
    `config ${json.config.digest}`,
  );
  const diffIds = configJson.rootfs.diff_ids;
  if (diffIds.length !== json.layers.length) {
    throw new InvalidArgumentError(
      `manifest ${desc.digest} lists ${json.layers.length} layers but config ${json.config.digest} has ${diffIds.length} diff_ids`,
      { op: 'pull', digest: desc.digest },
    );
  }
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
  let spoolDirMade = false;
  const rawStream = (i: number): Readable => {
    const d = descs[i];
    const raw = r.client.blob(d, (offset, err) =>
      opts.onEvent?.({
        type: 'retry',
        index: i,
        offset,
        error: err instanceof Error ? err.message : String(err),
      }),
    );
    const count = counter((n) => opts.onEvent?.({ type: 'layer-bytes', index: i, bytes: n, size: d.size }));
    raw.on('error', (e) => count.destroy(e));
    count.on('close', () => raw.destroy());
    return raw.pipe(count);
  };
  const spool = (i: number): Promise<string> => {
    const d = descs[i];
    const path = join(opts.spoolDir, `layer-${i}`);
    const hash = createHash(d.digest.slice(0, d.digest.indexOf(':')));
    let n = 0;
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
        hash.update(chunk);
        cb(null, chunk);
      },
      flush(cb) {
        const got = `${d.digest.slice(0, d.digest.indexOf(':'))}:${hash.digest('hex')}`;
        if (n !== d.size || got !== d.digest)
          return cb(
            new DataLossError(
              `layer ${d.digest} from ${where}: ${n} bytes with digest ${got}, expected ${d.size} bytes`,
              { op: 'pull', digest: d.digest },
            ),
          );
        cb();
      },
    });
    return (async () => {
      if (!spoolDirMade) {
        await fs.mkdir(opts.spoolDir, { recursive: true });
        spoolDirMade = true;
      }
      const fh = await fs.open(path, 'wx', 0o600);
      await pipeline(rawStream(i), verify, fh.createWriteStream(), { signal: abort.signal });
      return path;
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

  const layers: LayerRef[] = descs.map((d, i) => ({
    digest: d.digest,
    mediaType: d.mediaType,
    size: d.size,
    diffId: d.diffId,
    open: async () => {
      startAhead(i);
      const spooled = spools.get(i);
      const raw = spooled ? createReadStream(await spooled) : rawStream(i);
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
          cb();
        },
      });
      out.on('error', (e) => timing.destroy(e));
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
      await fs.rm(opts.spoolDir, { recursive: true, force: true });
    },
  };
}

export { platformName };
