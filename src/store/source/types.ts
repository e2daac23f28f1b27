// What a source hands to the importer: one image, fully verified up to its layers, whose bytes are
// verified as they are read.
import type { Readable } from 'node:stream';
import type { OciImageConfig } from '../../schema/generated/oci-image-config.js';
import type { OciImageManifest } from '../../schema/generated/oci-image-manifest.js';
import type { TreeNode } from '../tree-index-encode.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface OpenSourceOptions {
  /** Which image of a multi-platform index to take; linux/amd64 by default. */
  platform?: Platform;
  /** Where `containerd:NAME` looks (containerd-content.ts; defaults: containerd's own). */
  containerd?: { root?: string; address?: string; namespace?: string };
  /** Where `containers-storage:NAME` looks (containers-storage.ts; default: storage.conf's graphroot). */
  containersStorage?: { root?: string; storageConf?: string };
}

export interface LayerRef {
  digest: string;
  mediaType: string;
  size: number;
  diffId: string;
  /**
   * The decompressed tar stream. It errors with DataLossError if the compressed bytes don't match
   * `digest`/`size` or the uncompressed bytes don't match `diffId`, and InvalidArgumentError for
   * corrupt/truncated gzip/zstd. The checks run at end of stream: read it to the end.
   */
  open(): Promise<Readable>;
}

export interface ImageSource {
  /** e.g. "oci-archive /x.tar (image sha256:…)" */
  description: string;
  manifestDigest: string;
  /** The manifest's exact bytes (synthesized for a docker-archive). */
  manifest: Buffer;
  config: Buffer;
  manifestJson: OciImageManifest;
  configJson: OciImageConfig;
  layers: LayerRef[];
  /** Tags found for this image in the source (ref.name annotations or RepoTags). */
  names: string[];
  /** Called by the importer after layer `index` is applied onto `root` (the in-memory tree), for
   * sources whose layers need more than the tar says (containers-storage's overlay form). */
  finishLayer?: (index: number, root: TreeNode) => Promise<void>;
  close(): Promise<void>;
}
