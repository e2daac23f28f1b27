// The store side of preparing a container: which image its bundle names, and the lease that
// keeps that image from gc while the container runs.
import { createHash } from 'node:crypto';

import { IMAGE_ANNOTATION } from '../spec/annotations.js';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../store/errors.js';
import { isLeaseId } from '../store/layout.js';
import { createLease, releaseLease } from '../store/leases.js';
import { resolveImageRecord, type ImageRecord } from '../store/records.js';
import type { Logger } from './log.js';

// Still exported from here for the daemon's own modules; the definition is a leaf module.
export { IMAGE_ANNOTATION };

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

/** A lease left by a daemon that died is stale: one daemon serves every container of its store. */
export async function takeContainerLease(
  storeRoot: string,
  leaseId: string,
  digest: string,
  labels: Record<string, string>,
  logger: Logger,
): Promise<void> {
  try {
    await createLease(storeRoot, leaseId, digest, labels);
  } catch (err) {
    if (!(err instanceof AlreadyExistsError)) throw err;
    logger.log('warn', `replacing stale lease ${leaseId}`);
    await releaseLease(storeRoot, leaseId).catch(() => undefined);
    await createLease(storeRoot, leaseId, digest, labels);
  }
}
