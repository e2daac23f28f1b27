// The lease every reader of an image holds for as long as it reads: a container root served by
// the daemon, a `strata mount`. gc keeps the image's objects while the lease exists, so an
// `image rm` + `gc` under a live mount changes nothing it reads. This module is the only place
// that takes or releases such a lease (serve.ts calls it once per session).
//
// The record says who holds it, in labels (store/leases.ts's format is unchanged: labels are
// free-form strings, and leases written before these labels carry only `container`/`bundle`):
//   kind      'container' | 'mount'
//   holder    the container id, or the mount point
//   pid       the process that serves the reader (the daemon, or `strata mount`)
//   pidStart  that process's start time (/proc/<pid>/stat field 22, clock ticks since boot), so a
//             reconciler can tell the holder from a later process that reused its pid
// A holder killed with SIGKILL leaves its lease; `isLeaseHolderAlive` is what a reconciler asks.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { AlreadyExistsError, NotFoundError } from '../errors.js';
import type { Lease } from '../schema/generated/lease.js';
import { createLease, releaseLease } from '../store/leases.js';

export type ImageLeaseKind = 'container' | 'mount';

export interface ImageLeaseRequest {
  kind: ImageLeaseKind;
  /** Who reads: a container id, a mount point. */
  holder: string;
  /** Default `<kind>-<pid>-<8 random hex>`. */
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

/** Field 22 (starttime, clock ticks since boot) of /proc/<pid>/stat, or undefined when the
 * process is gone or a zombie. With the pid it names one process, even after the pid is reused. */
export function processStartTime(pid: number | 'self'): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: fields after it follow the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return fields[19];
}

/** Whether the process a lease names is still the one that took it. undefined: the lease does not
 * say (written before holders were recorded). */
export function isLeaseHolderAlive(lease: Pick<Lease, 'labels'>): boolean | undefined {
  const pid = Number(lease.labels?.pid);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const started = processStartTime(pid);
  return started !== undefined && started === lease.labels?.pidStart;
}

let selfStart: string | undefined;

export async function takeImageLease(
  storeRoot: string,
  imageDigest: string,
  req: ImageLeaseRequest,
): Promise<ImageLease> {
  const id = req.id ?? `${req.kind}-${process.pid}-${randomBytes(4).toString('hex')}`;
  selfStart ??= processStartTime('self') ?? '';
  const labels: Record<string, string> = {
    ...req.labels,
    kind: req.kind,
    holder: req.holder,
    pid: String(process.pid),
    pidStart: selfStart,
  };
  try {
    await createLease(storeRoot, id, imageDigest, labels);
  } catch (err) {
    if (!(err instanceof AlreadyExistsError) || !req.onStale) throw err;
    req.onStale(id);
    await releaseLease(storeRoot, id).catch(() => undefined);
    await createLease(storeRoot, id, imageDigest, labels);
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
