// Verified reads of small blobs (manifests, configs) and layer refs, shared by both formats.
import { DataLossError, InvalidArgumentError, NotFoundError } from '../../errors.js';
import type { OciImageConfig } from '../../schema/generated/oci-image-config.js';
import { parseAndValidate } from '../../schema/validate.js';
import type { ArchiveReader } from './archive-reader.js';
import { readSmall } from './archive-reader.js';
import { checkDigest, digestOf, hasherFor } from './digest.js';
import { layerStream } from './layer-stream.js';
import type { Compression } from './media-types.js';
import type { LayerRef } from './types.js';

/** Manifests, indexes and configs larger than this are refused before being read. */
export const MAX_JSON_BLOB = 16 << 20;

/**
 * An image config's bytes (already checked against the manifest's digest), validated, with one
 * diff_id for each of the `layerCount` layers the manifest lists: the OCI layout and registry
 * sources read a manifest the same way. `op` names the operation in errors ('import', 'pull').
 */
export function parseManifestConfig(
  config: Buffer,
  configDigest: string,
  manifestDigest: string,
  layerCount: number,
  op: string,
): OciImageConfig {
  const json = parseAndValidate<OciImageConfig>('oci-image-config', config, `config ${configDigest}`);
  const diffIds = json.rootfs.diff_ids;
  if (diffIds.length !== layerCount) {
    throw new InvalidArgumentError(
      `manifest ${manifestDigest} lists ${layerCount} layers but config ${configDigest} has ${diffIds.length} diff_ids`,
      { op, digest: manifestDigest },
    );
  }
  return json;
}

export function layoutBlobPath(digest: string): string {
  const [alg, hex] = digest.split(':');
  return `blobs/${alg}/${hex}`;
}

/** Read a blob by descriptor and check its size and digest. */
export async function readVerifiedBlob(
  reader: ArchiveReader,
  desc: { digest: string; size: number },
  what: string,
): Promise<Buffer> {
  checkDigest(desc.digest, what);
  if (desc.size > MAX_JSON_BLOB) {
    throw new InvalidArgumentError(`${what} ${desc.digest} is too large (${desc.size} bytes)`, {
      op: 'import',
      digest: desc.digest,
    });
  }
  const data = await readBlobOrMissing(reader, desc.digest, what);
  const got = digestOf(hasherFor(desc.digest).update(data), desc.digest);
  if (data.length !== desc.size || got !== desc.digest) {
    throw new DataLossError(
      `${what} ${desc.digest} in ${reader.description} does not match its descriptor ` +
        `(${data.length} bytes with digest ${got}, expected ${desc.size} bytes)`,
      { op: 'import', digest: desc.digest },
    );
  }
  return data;
}

async function readBlobOrMissing(reader: ArchiveReader, digest: string, what: string): Promise<Buffer> {
  if ((await reader.size(layoutBlobPath(digest))) === undefined) throw missingBlob(reader, digest, what);
  return readSmall(reader, layoutBlobPath(digest), MAX_JSON_BLOB);
}

export function missingBlob(reader: ArchiveReader, digest: string, what: string): NotFoundError {
  return new NotFoundError(`${what} blob ${digest} not found in ${reader.description}`, {
    op: 'import',
    digest,
  });
}

/** A layer whose bytes live at `path` in `reader`. */
export function layerRef(
  reader: ArchiveReader,
  path: string,
  d: { digest: string; mediaType: string; size: number; diffId: string; compression: Compression },
): LayerRef {
  return {
    digest: d.digest,
    mediaType: d.mediaType,
    size: d.size,
    diffId: d.diffId,
    open: async () =>
      layerStream(await reader.open(path), {
        digest: d.digest,
        size: d.size,
        diffId: d.diffId,
        compression: d.compression,
        what: `layer ${d.digest} in ${reader.description}`,
      }),
  };
}
