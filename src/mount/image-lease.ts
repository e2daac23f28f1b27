// The lease every reader of an image holds for as long as it reads: a container root served by
// the daemon, a `strata mount`. gc keeps the image's objects while the lease exists, so an
// `image rm` + `gc` under a live mount changes nothing it reads. This module is the only place
// that takes or releases such a lease (serve.ts calls it once per session).
//
// The record says what reads, in labels (store/leases.ts's format is unchanged: labels are
// free-form strings, and leases written before these labels carry only `container`/`bundle`):
//   kind      'container' | 'mount'
//   reader    the container id, or the mount point
// and which process serves the reader in its `holder` field (store/holder.ts: pid, start time and
// boot id), so a reconciler tells a live holder from a dead one, or from a later process that
// reused its pid. A holder killed with SIGKILL leaves its lease; daemon start, gc and rm release it.
import { AlreadyExistsError, NotFoundError } from '../errors.js';
import { currentHolder } from '../store/holder.js';
import { createLease, releaseLease } from '../store/leases.js';

export type ImageLeaseKind = 'container' | 'mount';

export interface ImageLeaseRequest {
  kind: ImageLeaseKind;
  /** What reads: a container id, a mount point. */
  reader: string;
  /** Default `<kind>-<pid>-<start time>-<n>`. */
  id?: string;
  /** More labels (the daemon keeps `container` and `bundle`, as leases always had). */
  labels?: Record<string, string>;
  /** Set when a lease already under `id` can only be stale (one daemon serves every container
   * of a store): it is replaced, and this is told which. Otherwise an existing id is an error. */
  onStale?: (id: string) => void;
}

export interface ImageLease {
  readonly id: string;
  readonly labels: Record<string, string>;
  /** Removes the lease; idempotent, and a lease someone already removed is fine. */
  release(): Promise<void>;
}

let taken = 0;

export async function takeImageLease(
  storeRoot: string,
  imageDigest: string,
  req: ImageLeaseRequest,
): Promise<ImageLease> {
  const holder = currentHolder(req.kind === 'mount' ? 'strata mount' : 'strata daemon');
  // pid + start time name this process for this boot; the count tells its leases apart.
  const id = req.id ?? `${req.kind}-${holder.pid}-${holder.startTime}-${++taken}`;
  const labels: Record<string, string> = { ...req.labels, kind: req.kind, reader: req.reader };
  try {
    await createLease(storeRoot, id, imageDigest, labels, holder);
  } catch (err) {
    if (!(err instanceof AlreadyExistsError) || !req.onStale) throw err;
    req.onStale(id);
    await releaseLease(storeRoot, id).catch(() => undefined);
    await createLease(storeRoot, id, imageDigest, labels, holder);
  }
  let released: Promise<void> | undefined;
  return {
    id,
    labels,
    release: () =>
      (released ??= releaseLease(storeRoot, id).catch((err: unknown) => {
        if (!(err instanceof NotFoundError)) throw err;
      })),
  };
}
