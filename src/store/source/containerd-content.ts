// An image from containerd's content store, read in place: containerd keeps every blob it pulled
// or imported under `<root>/io.containerd.content.v1.content/blobs/<alg>/<hex>`, the layout of an
// OCI image layout's blobs, so the OCI walk (index -> manifest for the platform -> config ->
// layers) runs on it unchanged, every blob verified against its descriptor as it is read (the
// directory is only as trustworthy as whoever can write it).
//
// The name -> target descriptor mapping lives in containerd's metadata (a bolt database, which
// containerd holds open and locked), so it is asked of containerd itself, through `ctr images ls
// name==NAME` on its socket: ctr ships with containerd, so it is there wherever the store is, and
// this keeps a gRPC client and containerd's protos out of the importer. Callers that already know
// the descriptor (the shim, from the container record) pass it and skip ctr.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  isErrno,
} from '../../errors.js';
import type { Descriptor } from '../../schema/generated/oci-image-index.js';
import { DirReader } from './archive-reader.js';
import { layoutBlobPath } from './blobs.js';
import { checkDigest } from './digest.js';
import { isIndexType, isManifestType } from './media-types.js';
import { imageFromDescriptor } from './oci-layout.js';
import type { ImageSource, Platform } from './types.js';

export const CONTAINERD_DEFAULT_ROOT = '/var/lib/containerd';
export const CONTAINERD_DEFAULT_ADDRESS = '/run/containerd/containerd.sock';
export const CONTAINERD_CONTENT_DIR = 'io.containerd.content.v1.content';
/** How long `ctr images ls` may take before containerd is taken as not answering. */
const CTR_TIMEOUT_MS = 10_000;
/** A sane bound on ctr's listing of one name. */
const CTR_MAX_OUTPUT = 1 << 20;

export interface ContainerdLocation {
  /** containerd's root (default /var/lib/containerd). */
  root?: string;
  /** containerd's gRPC socket (default $CONTAINERD_ADDRESS, else /run/containerd/containerd.sock). */
  address?: string;
  /** containerd namespace (default $CONTAINERD_NAMESPACE, else `default`; CRI uses `k8s.io`). */
  namespace?: string;
}

export interface ContainerdImageOptions extends ContainerdLocation {
  /** The image name as containerd lists it, e.g. docker.io/library/busybox:latest. */
  name: string;
  /** The image's target (index or manifest) when the caller knows it: ctr is not asked then. */
  target?: { digest: string; mediaType: string; size?: number };
  platform: Platform;
}

function location(loc: ContainerdLocation): Required<ContainerdLocation> {
  return {
    root: loc.root ?? CONTAINERD_DEFAULT_ROOT,
    address: loc.address ?? process.env.CONTAINERD_ADDRESS ?? CONTAINERD_DEFAULT_ADDRESS,
    namespace: loc.namespace ?? process.env.CONTAINERD_NAMESPACE ?? 'default',
  };
}

/** Parses `ctr images ls` output (REF TYPE DIGEST SIZE… columns) for the row of exactly `name`. */
export function parseCtrImageList(
  stdout: string,
  name: string,
): { digest: string; mediaType: string } | undefined {
  const lines = stdout.split('\n');
  if (!/^REF\s+TYPE\s+DIGEST\b/.test(lines[0] ?? '')) {
    throw new InvalidArgumentError(
      `ctr images ls printed an unexpected header: ${JSON.stringify(lines[0]?.slice(0, 80))}`,
      {
        op: 'import',
      },
    );
  }
  for (const line of lines.slice(1)) {
    const [ref, mediaType, digest] = line.trim().split(/\s+/);
    if (ref !== name) continue;
    checkDigest(digest ?? '', `containerd image ${name}`);
    if (digest === undefined || mediaType === undefined) continue;
    if (!isIndexType(mediaType) && !isManifestType(mediaType)) {
      throw new InvalidArgumentError(`containerd image ${name} has an unsupported media type ${mediaType}`, {
        op: 'import',
        ref: name,
      });
    }
    return { digest, mediaType };
  }
  return undefined;
}

/** The target descriptor containerd's metadata records for `name` (asked through ctr). */
export async function resolveContainerdImage(
  loc: ContainerdLocation & { name: string },
): Promise<{ digest: string; mediaType: string }> {
  const { address, namespace } = location(loc);
  const argv = ['-a', address, '-n', namespace, 'images', 'ls', `name==${loc.name}`];
  let stdout: string;
  try {
    const r = await execa('ctr', argv, {
      timeout: CTR_TIMEOUT_MS,
      maxBuffer: CTR_MAX_OUTPUT,
      stdin: 'ignore',
    });
    stdout = r.stdout;
  } catch (err) {
    const e = err as { code?: string; stderr?: string; timedOut?: boolean; shortMessage?: string };
    if (e.code === 'ENOENT') {
      throw new FailedPreconditionError(
        "ctr (containerd's client) is not installed: it resolves containerd image names",
        {
          op: 'import',
          cause: err,
        },
      );
    }
    const why = e.timedOut
      ? `no answer within ${CTR_TIMEOUT_MS / 1000} s`
      : (e.stderr ?? '').trim() || e.shortMessage;
    throw new UnavailableError(
      `containerd at ${address} (namespace ${namespace}) could not list images: ${why}`,
      {
        op: 'import',
        path: address,
        cause: err,
      },
    );
  }
  const found = parseCtrImageList(stdout, loc.name);
  if (!found) {
    throw new NotFoundError(
      `containerd at ${address} has no image ${JSON.stringify(loc.name)} in namespace ${namespace}`,
      {
        op: 'import',
        ref: loc.name,
      },
    );
  }
  return found;
}

/** The image `name` of containerd (at `root`), for `platform`, as an ImageSource. */
export async function openContainerdImage(opts: ContainerdImageOptions): Promise<ImageSource> {
  const loc = location(opts);
  const target = opts.target ?? (await resolveContainerdImage({ ...loc, name: opts.name }));
  checkDigest(target.digest, `containerd image ${opts.name}`);
  const content = join(loc.root, CONTAINERD_CONTENT_DIR);
  const reader = new DirReader(content, `containerd content store ${content}`);
  let size = opts.target?.size;
  if (size === undefined) {
    // ctr prints sizes rounded (3.2 MiB): the blob's own size, whose digest is checked on read.
    try {
      size = (await stat(join(content, layoutBlobPath(target.digest)))).size;
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
      throw new NotFoundError(
        `containerd image ${opts.name}: its ${target.digest} is not in ${content} (another containerd root? --containerd-root)`,
        { op: 'import', digest: target.digest, cause: err },
      );
    }
  }
  const top: Descriptor = { mediaType: target.mediaType, digest: target.digest, size };
  return imageFromDescriptor(reader, top, opts.platform, `containerd:${opts.name} (${content})`, [opts.name]);
}

/** The annotation containerd's CRI plugin puts in a container's config.json: its image's name. */
export const CRI_IMAGE_NAME_ANNOTATION = 'io.kubernetes.cri.image-name';
const MAX_BUNDLE_CONFIG = 4 << 20;

async function ctrJson(loc: Required<ContainerdLocation>, args: string[], what: string): Promise<unknown> {
  try {
    const r = await execa('ctr', ['-a', loc.address, '-n', loc.namespace, ...args], {
      timeout: CTR_TIMEOUT_MS,
      maxBuffer: MAX_BUNDLE_CONFIG * 4,
      stdin: 'ignore',
    });
    return JSON.parse(r.stdout) as unknown;
  } catch (err) {
    const e = err as { stderr?: string; shortMessage?: string };
    const why = (e.stderr ?? '').trim() || e.shortMessage || String(err);
    if (/not found/.test(why)) throw new NotFoundError(`${what}: ${why}`, { op: 'import', cause: err });
    throw new UnavailableError(`${what}: ${why}`, { op: 'import', path: loc.address, cause: err });
  }
}

/**
 * The name of the image a containerd container was created from: the CRI annotation
 * (`io.kubernetes.cri.image-name`) in `<bundle>/config.json` when the bundle has it (no process
 * spawned), else the `Image` of the container record (`ctr containers info ID`, ~30 ms).
 * NotFoundError when neither names one (e.g. `ctr run --rootfs`).
 */
export async function containerdImageOf(
  opts: ContainerdLocation & { id: string; bundle?: string },
): Promise<string> {
  if (opts.bundle !== undefined) {
    try {
      const config = JSON.parse(
        (await readFile(join(opts.bundle, 'config.json'))).subarray(0, MAX_BUNDLE_CONFIG).toString('utf8'),
      ) as { annotations?: Record<string, unknown> };
      const name = config.annotations?.[CRI_IMAGE_NAME_ANNOTATION];
      if (typeof name === 'string' && name !== '') return name;
    } catch (err) {
      if (!isErrno(err, 'ENOENT') && !(err instanceof SyntaxError)) throw err;
    }
  }
  const loc = location(opts);
  const what = `containerd container ${opts.id} (namespace ${loc.namespace})`;
  const info = (await ctrJson(loc, ['containers', 'info', opts.id], what)) as { Image?: unknown } | null;
  if (typeof info?.Image === 'string' && info.Image !== '') return info.Image;
  throw new NotFoundError(`${what} names no image`, { op: 'import', ref: opts.id });
}
