// The media types strata reads, and how a layer's bytes are compressed. Anything else is refused
// by name: foreign/non-distributable layers live outside the image, encrypted ones need keys.
import { InvalidArgumentError } from '../../errors.js';

export type Compression = 'none' | 'gzip' | 'zstd';

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

const LAYERS: Record<string, Compression> = {
  [OCI_LAYER_TAR]: 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.diff.tar': 'none',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.diff.tar.zstd': 'zstd',
};

export const isIndexType = (t: string | undefined): boolean => t === OCI_INDEX || t === DOCKER_MANIFEST_LIST;
export const isManifestType = (t: string | undefined): boolean => t === OCI_MANIFEST || t === DOCKER_MANIFEST;
export const isConfigType = (t: string): boolean => t === OCI_CONFIG || t === DOCKER_CONFIG;

/** The compression of a layer media type; InvalidArgumentError naming the blob when unsupported. */
export function layerCompression(mediaType: string, blob: string): Compression {
  const c = LAYERS[mediaType];
  if (c !== undefined) return c;
  let why = 'unknown layer media type';
  if (/nondistributable|foreign/.test(mediaType))
    why = 'foreign (non-distributable) layers are not supported';
  else if (/\+encrypted$/.test(mediaType)) why = 'encrypted layers are not supported';
  throw new InvalidArgumentError(`layer ${blob}: ${why}: ${mediaType}`, { op: 'import', digest: blob });
}

/** Compression recognized from a stream's first bytes (for docker-archive layers typed as plain tar). */
export function sniffCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}
