// An image from a docker-archive (docker save, podman save, skopeo docker-archive:). Its
// manifest.json has no manifest blob, so an OCI manifest is synthesized: config digest = sha256 of
// the config file, each layer described by the digest and size of its bytes as stored (an
// uncompressed layer: digest = diff_id). The same archive always gives the same manifest digest.
import { createHash } from 'node:crypto';
import { DataLossError, InvalidArgumentError, NotFoundError } from '../../errors.js';
import { parseAndValidate } from '../../schema/validate.js';
import type { DockerArchiveManifest } from '../../schema/generated/docker-archive-manifest.js';
import type { OciImageConfig } from '../../schema/generated/oci-image-config.js';
import type { OciImageManifest } from '../../schema/generated/oci-image-manifest.js';
import { readSmall, type ArchiveReader } from './archive-reader.js';
import { MAX_JSON_BLOB, layerRef } from './blobs.js';
import { checkDigest, sha256Digest } from './digest.js';
import {
  OCI_CONFIG,
  OCI_LAYER_TAR,
  OCI_MANIFEST,
  sniffCompression,
  type Compression,
} from './media-types.js';
import type { ImageSource, LayerRef } from './types.js';

type Entry = DockerArchiveManifest[number];

const LAYER_TYPES: Record<Compression, string> = {
  none: OCI_LAYER_TAR,
  gzip: OCI_LAYER_TAR + '+gzip',
  zstd: OCI_LAYER_TAR + '+zstd',
};

/** `ref` is "name:tag", "@N" or "N" (index into manifest.json), or undefined for the only image. */
function chooseEntry(entries: Entry[], ref: string | undefined, reader: ArchiveReader): Entry {
  if (ref === undefined) {
    if (entries.length === 1) return entries[0];
    const names = entries.map((e, i) => e.RepoTags?.[0] ?? `@${i}`).join(', ');
    throw new InvalidArgumentError(
      `${reader.description} holds ${entries.length} images (${names}); name one`,
      {
        op: 'import',
      },
    );
  }
  const index = /^@?(\d+)$/.exec(ref);
  if (index) {
    const e = entries[Number(index[1])];
    if (!e) throw new NotFoundError(`${reader.description} has no image @${index[1]}`, { op: 'import', ref });
    return e;
  }
  const matches = (tag: string) => tag === ref || tag.endsWith('/' + ref);
  const e = entries.find((x) => (x.RepoTags ?? []).some(matches));
  if (!e) {
    const have = entries.flatMap((x) => x.RepoTags ?? []).join(', ');
    throw new NotFoundError(
      `no image named ${JSON.stringify(ref)} in ${reader.description} (names: ${have || 'none'})`,
      {
        op: 'import',
        ref,
      },
    );
  }
  return e;
}

async function head(reader: ArchiveReader, path: string): Promise<Buffer> {
  const stream = await reader.open(path);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    chunks.push(c as Buffer);
    n += (c as Buffer).length;
    if (n >= 4) break;
  }
  stream.destroy();
  return Buffer.concat(chunks);
}

async function hashMember(reader: ArchiveReader, path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of await reader.open(path)) h.update(c as Buffer);
  return 'sha256:' + h.digest('hex');
}

/** A digest spelled by the path itself (`blobs/sha256/<hex>`, `<hex>.json`), if any. */
function digestInPath(path: string): string | undefined {
  const m = /(?:^|\/)(?:blobs\/sha256\/)?([a-f0-9]{64})(?:\.json)?$/.exec(path);
  return m ? `sha256:${m[1]}` : undefined;
}

export async function openDockerArchive(
  reader: ArchiveReader,
  where: string,
  ref: string | undefined,
): Promise<ImageSource> {
  const entries = parseAndValidate<DockerArchiveManifest>(
    'docker-archive-manifest',
    await readSmall(reader, 'manifest.json', MAX_JSON_BLOB),
    `manifest.json of ${reader.description}`,
  );
  const entry = chooseEntry(entries, ref, reader);
  const config = await readSmall(reader, entry.Config, MAX_JSON_BLOB);
  const configDigest = sha256Digest(config);
  const named = digestInPath(entry.Config);
  if (named !== undefined && named !== configDigest) {
    throw new DataLossError(`config ${entry.Config} in ${reader.description} has digest ${configDigest}`, {
      op: 'import',
      digest: named,
    });
  }
  const configJson = parseAndValidate<OciImageConfig>('oci-image-config', config, `config ${configDigest}`);
  const diffIds = configJson.rootfs.diff_ids;
  if (diffIds.length !== entry.Layers.length) {
    throw new InvalidArgumentError(
      `${reader.description}: manifest.json lists ${entry.Layers.length} layers but config ${configDigest} has ${diffIds.length} diff_ids`,
      { op: 'import', digest: configDigest },
    );
  }
  const layers: LayerRef[] = [];
  for (const [i, path] of entry.Layers.entries()) {
    const diffId = checkDigest(diffIds[i], `diff_id ${i} of config ${configDigest}`);
    const size = await reader.size(path);
    if (size === undefined) {
      throw new NotFoundError(`layer ${path} (diff_id ${diffId}) not found in ${reader.description}`, {
        op: 'import',
        digest: diffId,
        path,
      });
    }
    const compression = sniffCompression(await head(reader, path));
    // A compressed layer's digest is that of its bytes: from its name when the archive spells it
    // (verified when read), else measured now.
    const digest = compression === 'none' ? diffId : (digestInPath(path) ?? (await hashMember(reader, path)));
    layers.push(
      layerRef(reader, path, { digest, mediaType: LAYER_TYPES[compression], size, diffId, compression }),
    );
  }
  const manifestJson: OciImageManifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const manifest = Buffer.from(JSON.stringify(manifestJson));
  const manifestDigest = sha256Digest(manifest);
  return {
    description: `${where} (image ${manifestDigest})`,
    manifestDigest,
    manifest,
    config,
    manifestJson,
    configJson,
    layers,
    names: entry.RepoTags ?? [],
    close: () => reader.close(),
  };
}
