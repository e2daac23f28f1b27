// `strata image pull`: an image from a registry into the store, through the store's importer
// (src/store/import.ts), so that a pull makes visible exactly what an import does and in the
// same order: nothing until every layer's bytes matched their digests and diff_ids, the tree
// index and blobs were written, and then the record and names. A failed or interrupted pull
// leaves only its ingest dir (removed, or swept by gc) and unreferenced objects.
import { promises as fs } from 'node:fs';
import { DataLossError, InvalidArgumentError } from '../errors.js';
import { importImage, type ImportProgress, type ImportResult } from '../store/import.js';
import type { Store } from '../store/store.js';
import type { Platform } from '../store/source/types.js';
import type { CredentialOptions } from './credentials.js';
import { Http, type HttpOptions } from './http.js';
import { loadRegistriesConf, type RegistriesConf } from './registries-conf.js';
import { listTags, openRegistrySource, type PullEvent } from './source.js';

export interface PullOptions {
  platform?: Platform;
  tlsVerify?: boolean;
  /** Default: registries.conf as podman reads it. */
  conf?: RegistriesConf;
  credentials?: CredentialOptions;
  http?: HttpOptions;
  prefetch?: number;
  minFree?: string | number;
  /** An extra name for the image besides the reference pulled. */
  name?: string;
  onEvent?: (e: PullEvent) => void;
  onProgress?: (p: ImportProgress) => void;
}

export interface PullResult extends ImportResult {
  /** Per layer: compressed size, uncompressed bytes, ms from first byte to applied. */
  layers: { digest: string; size: number; uncompressed: number; ms: number }[];
  from: string;
}

export async function pullImage(store: Store, ref: string, opts: PullOptions = {}): Promise<PullResult> {
  const http = new Http(opts.http);
  const conf = opts.conf ?? (await loadRegistriesConf());
  const layers: PullResult['layers'] = [];
  let from = '';
  const onEvent = (e: PullEvent) => {
    if (e.type === 'resolved') {
      from = e.from;
      for (const l of e.layers) layers.push({ digest: l.digest, size: l.size, uncompressed: 0, ms: 0 });
    } else if (e.type === 'layer-done' && layers[e.index]) {
      layers[e.index].uncompressed = e.uncompressed;
      layers[e.index].ms = e.ms;
    }
    opts.onEvent?.(e);
  };
  const kept = new Set<string>();
  try {
    const result = await importImage(store, ref, {
      name: opts.name,
      minFree: opts.minFree,
      onProgress: opts.onProgress,
      openSource: () =>
        openRegistrySource(ref, {
          http,
          conf,
          platform: opts.platform,
          tlsVerify: opts.tlsVerify,
          credentials: opts.credentials,
          keepDir: store.ingestRoot,
          kept,
          prefetch: opts.prefetch,
          onEvent,
        }),
    });
    // Committed: the layer blobs kept for a resume are of no more use.
    await dropKept(kept);
    return { ...result, layers, from };
  } catch (err) {
    // Bytes that failed a digest, or a layer that does not decompress or apply, would fail the
    // same way again: only what a network fault or an interruption cut short is worth resuming.
    if (err instanceof DataLossError || err instanceof InvalidArgumentError) await dropKept(kept);
    throw err;
  } finally {
    await http.close();
  }
}

async function dropKept(kept: Set<string>): Promise<void> {
  await Promise.all([...kept].map((p) => fs.rm(p, { force: true })));
}

/**
 * `strata image pull --all-tags REPO`: every tag of the repository, one pull after the other
 * (layers shared between tags are downloaded once: layer-reuse and object dedup do the rest).
 * Stops at the first failure, as podman does; the tags pulled before it stay.
 */
export async function pullAllTags(
  store: Store,
  repo: string,
  opts: PullOptions & { onTag?: (tag: string, index: number, count: number) => void } = {},
): Promise<PullResult[]> {
  const conf = opts.conf ?? (await loadRegistriesConf());
  const http = new Http(opts.http);
  let listed: { repository: string; tags: string[] };
  try {
    listed = await listTags(repo, {
      http,
      conf,
      tlsVerify: opts.tlsVerify,
      credentials: opts.credentials,
      onEvent: opts.onEvent,
    });
  } finally {
    await http.close();
  }
  const results: PullResult[] = [];
  for (const [i, tag] of listed.tags.entries()) {
    opts.onTag?.(tag, i, listed.tags.length);
    results.push(await pullImage(store, `${listed.repository}:${tag}`, { ...opts, conf, name: undefined }));
  }
  return results;
}
