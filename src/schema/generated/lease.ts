// Generated from schemas/lease.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * A GC root held while something (a running container) uses an image: leases/<id>.json.
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
}
