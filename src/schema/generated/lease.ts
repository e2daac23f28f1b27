// Generated from schemas/lease.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * A GC root held while something (a running container, a mount) uses an image: leases/<id>.json. A lease whose holder process no longer exists is stale: the daemon releases it on start, gc and `strata rm` release it, fsck reports it (stale-lease).
 */
export interface Lease {
  id: string;
  /**
   * manifest digest of the image held
   */
  image: string;
  createdAt: string;
  labels?: {
    [k: string]: string;
  };
  /**
   * The process that holds the lease (the daemon serving a container's root, a `strata mount`). It is alive while a process with this pid, start time and boot id exists, so a reused pid does not keep a dead holder's lease.
   */
  holder?: {
    pid: number;
    /**
     * field 22 of /proc/PID/stat: when the process started, in clock ticks after boot
     */
    startTime: string;
    /**
     * /proc/sys/kernel/random/boot_id when the lease was taken
     */
    bootId: string;
    /**
     * what the holder is, for messages ("strata daemon")
     */
    name?: string;
  };
}
