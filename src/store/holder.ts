// Who holds a lease, and whether it still exists. A holder is a process named by its pid, its start
// time (field 22 of /proc/PID/stat, clock ticks after boot) and the boot id: a pid reused by another
// process, or the same pid after a reboot (the store outlives one), is not the holder. A container's
// lease is held by the daemon that serves its root: the FUSE server lives in that process, so when
// it dies the container's root is gone too, whether or not the container's processes still run.
import { readFileSync } from 'node:fs';

import type { Lease } from '../schema/generated/lease.js';
import { isErrno } from '../errors.js';

export type LeaseHolder = NonNullable<Lease['holder']>;

let bootIdCache: string | undefined;

export function bootId(): string {
  bootIdCache ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return bootIdCache;
}

interface ProcStat {
  state: string;
  startTime: string;
}

/** The state and start time of `pid`; undefined when there is no such process. */
export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ESRCH')) return undefined;
    throw err;
  }
  // "pid (comm) state ppid ...": comm may itself hold spaces and parentheses.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
  return { state: fields[0], startTime: fields[19] };
}

/** The start time of `pid` while it runs (not a zombie); with the pid it names one process, even
 * after the pid is reused. undefined: gone. */
export function liveStartTime(pid: number): string | undefined {
  let stat: ProcStat | undefined;
  try {
    stat = procStat(pid);
  } catch {
    return undefined;
  }
  return stat && stat.state !== 'Z' && stat.state !== 'X' ? stat.startTime : undefined;
}

let ownStartTime: string | undefined;

/** This process as a lease holder. */
export function currentHolder(name?: string): LeaseHolder {
  if (ownStartTime === undefined) {
    const stat = procStat(process.pid);
    if (!stat) throw new Error(`cannot read /proc/${process.pid}/stat`);
    ownStartTime = stat.startTime;
  }
  return { pid: process.pid, startTime: ownStartTime, bootId: bootId(), ...(name ? { name } : {}) };
}

/**
 * Whether the holder's process still exists. A zombie has ended (only its exit status is left);
 * a /proc we may not read (hidepid) proves nothing, so the holder counts as alive.
 */
export function holderAlive(holder: LeaseHolder): boolean {
  if (holder.bootId !== bootId()) return false;
  let stat: ProcStat | undefined;
  try {
    stat = procStat(holder.pid);
  } catch {
    return true;
  }
  if (!stat || stat.state === 'Z' || stat.state === 'X') return false;
  return stat.startTime === holder.startTime;
}

/** "strata daemon pid 123" */
export function describeHolder(holder: LeaseHolder): string {
  return `${holder.name ?? 'process'} pid ${holder.pid} (started at tick ${holder.startTime})`;
}
