// An image from an OCI image layout (a directory, or the same tree inside an oci-archive tar):
// oci-layout -> index.json -> (nested indexes, by platform) -> manifest -> config + layers.
import { InvalidArgumentError, NotFoundError } from '../../errors.js';
import { parseAndValidate } from '../../schema/validate.js';
import type { OciImageIndex, Descriptor } from '../../schema/generated/oci-image-index.js';
import type { OciImageManifest } from '../../schema/generated/oci-image-manifest.js';
import type { OciImageLayout } from '../../schema/generated/oci-image-layout.js';
import { readSmall, type ArchiveReader } from './archive-reader.js';
import {
  MAX_JSON_BLOB,
  layoutBlobPath,
  layerRef,
  missingBlob,
  parseManifestConfig,
  readVerifiedBlob,
} from './blobs.js';
import { checkDigest } from './digest.js';
import {
  REF_NAME_ANNOTATION,
  isConfigType,
  isIndexType,
  isManifestType,
  layerCompression,
} from './media-types.js';
import type { ImageSource, Platform } from './types.js';

const MAX_INDEX_DEPTH = 4;

function platformName(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? '/' + p.variant : ''}`;
}

/** The descriptor of `index` for `platform`: exact variant when asked, else prefer none / the first. */
function choosePlatform(index: OciImageIndex, platform: Platform, what: string): Descriptor {
  const usable = index.manifests.filter((d) => isManifestType(d.mediaType) || isIndexType(d.mediaType));
  const match = usable.filter(
    (d) =>
      d.platform === undefined ||
      (d.platform.os === platform.os &&
        d.platform.architecture === platform.architecture &&
        (platform.variant === undefined || d.platform.variant === platform.variant)),
  );
  const exact = match.filter((d) => d.platform !== undefined);
  const pick =
    exact.find((d) => !d.platform!.variant) ?? exact[0] ?? (match.length === 1 ? match[0] : undefined);
  if (!pick) {
    const have = usable.map((d) => (d.platform ? platformName(d.platform) : 'unspecified')).join(', ');
    throw new NotFoundError(
      `${what} has no image for ${platformName(platform)} (it has: ${have || 'none'})`,
      {
        op: 'import',
      },
    );
  }
  return pick;
}

function checkMediaType(desc: Descriptor, docType: string | undefined, reader: ArchiveReader): void {
  if (docType !== undefined && docType !== desc.mediaType) {
    throw new InvalidArgumentError(
      `${desc.digest} in ${reader.description}: descriptor says ${desc.mediaType}, document says ${docType}`,
      { op: 'import', digest: desc.digest },
    );
  }
}

/** Follows `desc` (an index by platform, nested up to MAX_INDEX_DEPTH, or a manifest) to a
 * verified image manifest. */
export async function resolveManifest(
  reader: ArchiveReader,
  desc: Descriptor,
  platform: Platform,
  depth = 0,
): Promise<{ desc: Descriptor; bytes: Buffer; json: OciImageManifest }> {
  checkDigest(desc.digest, `descriptor in ${reader.description}`);
  if (isIndexType(desc.mediaType)) {
    if (depth >= MAX_INDEX_DEPTH) {
      throw new InvalidArgumentError(
        `${reader.description}: image indexes nested too deeply at ${desc.digest}`,
        {
          op: 'import',
          digest: desc.digest,
        },
      );
    }
    const bytes = await readVerifiedBlob(reader, desc, 'image index');
    const index = parseAndValidate<OciImageIndex>('oci-image-index', bytes, `image index ${desc.digest}`);
    checkMediaType(desc, index.mediaType, reader);
    const next = choosePlatform(index, platform, `image index ${desc.digest} in ${reader.description}`);
    return resolveManifest(reader, next, platform, depth + 1);
  }
  if (!isManifestType(desc.mediaType)) {
    throw new InvalidArgumentError(
      `${desc.digest} in ${reader.description}: unsupported media type ${desc.mediaType} (not an image manifest)`,
      { op: 'import', digest: desc.digest },
    );
  }
  const bytes = await readVerifiedBlob(reader, desc, 'manifest');
  const json = parseAndValidate<OciImageManifest>('oci-image-manifest', bytes, `manifest ${desc.digest}`);
  checkMediaType(desc, json.mediaType, reader);
  return { desc, bytes, json };
}

/** Top-level descriptors of index.json named `tag` (or all when no tag). */
function candidates(index: OciImageIndex, tag: string | undefined, reader: ArchiveReader): Descriptor[] {
  if (tag === undefined) return index.manifests;
  const named = index.manifests.filter((d) => d.annotations?.[REF_NAME_ANNOTATION] === tag);
  if (named.length === 0) {
    const have = index.manifests.map((d) => d.annotations?.[REF_NAME_ANNOTATION]).filter(Boolean);
    throw new NotFoundError(
      `no image tagged ${JSON.stringify(tag)} in ${reader.description} (tags: ${have.join(', ') || 'none'})`,
      {
        op: 'import',
        ref: tag,
      },
    );
  }
  return named;
}

export async function openOciImage(
  reader: ArchiveReader,
  where: string,
  tag: string | undefined,
  platform: Platform,
): Promise<ImageSource> {
  parseAndValidate<OciImageLayout>(
    'oci-image-layout',
    await readSmall(reader, 'oci-layout', 4096),
    `oci-layout of ${reader.description}`,
  );
  const index = parseAndValidate<OciImageIndex>(
    'oci-image-index',
    await readSmall(reader, 'index.json', MAX_JSON_BLOB),
    `index.json of ${reader.description}`,
  );
  let tops = candidates(index, tag, reader);
  const digests = new Set(tops.map((d) => d.digest));
  if (digests.size > 1) {
    // Several entries may be one multi-platform image spread over index.json itself.
    const synthetic: OciImageIndex = { schemaVersion: 2, manifests: tops };
    if (tops.every((d) => d.platform))
      tops = [choosePlatform(synthetic, platform, `index.json of ${reader.description}`)];
    else {
      const names = tops.map((d) => d.annotations?.[REF_NAME_ANNOTATION] ?? d.digest).join(', ');
      throw new InvalidArgumentError(
        `${reader.description} holds several images (${names}); name one with :TAG`,
        {
          op: 'import',
        },
      );
    }
  }
  if (tops.length === 0) {
    throw new NotFoundError(`${reader.description} holds no image`, { op: 'import' });
  }
  const top = tops[0];
  const names = index.manifests
    .filter((d) => d.digest === top.digest)
    .map((d) => d.annotations?.[REF_NAME_ANNOTATION])
    .filter((n): n is string => n !== undefined && (tag === undefined || n === tag));
  return imageFromDescriptor(reader, top, platform, where, [...new Set(names)]);
}

/**
 * The image `top` (an index or a manifest whose blobs are at `blobs/ALG/HEX` in `reader`) for
 * `platform`: manifest, config and layer refs, every blob verified against its descriptor.
 */
export async function imageFromDescriptor(
  reader: ArchiveReader,
  top: Descriptor,
  platform: Platform,
  where: string,
  names: string[],
): Promise<ImageSource> {
  const { desc, bytes, json } = await resolveManifest(reader, top, platform);

  if (!isConfigType(json.config.mediaType)) {
    throw new InvalidArgumentError(
      `manifest ${desc.digest}: config ${json.config.digest} has unsupported media type ${json.config.mediaType}`,
      { op: 'import', digest: json.config.digest },
    );
  }
  const config = await readVerifiedBlob(reader, json.config, 'config');
  const configJson = parseManifestConfig(
    config,
    json.config.digest,
    desc.digest,
    json.layers.length,
    'import',
  );
  const diffIds = configJson.rootfs.diff_ids;
  const layers = [];
  for (const [i, l] of json.layers.entries()) {
    checkDigest(l.digest, `layer ${i} of manifest ${desc.digest}`);
    checkDigest(diffIds[i], `diff_id ${i} of config ${json.config.digest}`);
    const compression = layerCompression(l.mediaType, l.digest);
    if ((await reader.size(layoutBlobPath(l.digest))) === undefined)
      throw missingBlob(reader, l.digest, 'layer');
    layers.push(layerRef(reader, layoutBlobPath(l.digest), { ...l, diffId: diffIds[i], compression }));
  }
  return {
    description: `${where} (image ${desc.digest})`,
    manifestDigest: desc.digest,
    manifest: bytes,
    config,
    manifestJson: json,
    configJson,
    layers,
    names,
    close: () => reader.close(),
  };
}
