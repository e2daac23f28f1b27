// The store side of preparing a container: which image its bundle names, and what the lease that
// keeps that image from gc while the container runs says about its holder.
import { createHash } from 'node:crypto';

import { IMAGE_ANNOTATION } from '../spec/annotations.js';
import type { ImageLeaseRequest } from '../mount/image-lease.js';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import type { ImageRecord } from '../schema/generated/image-record.js';
import { isLeaseId } from '../store/layout.js';
import { resolveImageRecord } from '../store/records.js';

/** A container id that is a lease id is its own lease id; any other gets a stable hash. */
export function leaseIdFor(containerId: string): string {
  if (isLeaseId(containerId)) return containerId;
  return `c-${createHash('sha256').update(containerId).digest('hex').slice(0, 40)}`;
}

/**
 * resolveImageRecord (no names: the daemon needs none), with errors that name the annotation and
 * bundle and say how to fix them.
 */
export async function resolveBundleImage(
  storeRoot: string,
  ref: string,
  bundle: string,
): Promise<ImageRecord> {
  try {
    return await resolveImageRecord(storeRoot, ref);
  } catch (err) {
    const where = `annotation ${IMAGE_ANNOTATION}=${JSON.stringify(ref)} of bundle ${bundle}`;
    if (err instanceof NotFoundError) {
      throw new NotFoundError(
        `image ${ref} (${where}) is not in the store ${storeRoot}: import it with \`strata image import\``,
        { op: 'prepare', ref, cause: err },
      );
    }
    if (err instanceof InvalidArgumentError) {
      throw new InvalidArgumentError(`${where} is not an image reference or digest: ${err.message}`, {
        op: 'prepare',
        ref,
        cause: err,
      });
    }
    throw err;
  }
}

/**
 * The lease a container's root holds while the daemon serves it (taken and released by
 * mount/image-lease.ts, through serve.ts). Its id follows from the container id, so a lease under
 * that id can only be one a daemon that died left: it is replaced, and `onStale` says so.
 */
export function containerLease(
  containerId: string,
  bundle: string,
  onStale: (leaseId: string) => void,
): ImageLeaseRequest {
  return {
    kind: 'container',
    reader: containerId,
    id: leaseIdFor(containerId),
    // What container leases always carried, for readers of the older format.
    labels: { container: containerId, bundle },
    onStale,
  };
}
