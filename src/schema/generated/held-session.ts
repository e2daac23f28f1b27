// Generated from schemas/held-session.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * The tag a strata daemon gives each FUSE session's /dev/fuse fd it deposits with the fd holder (native/holder/strata-fdholder.c): everything a later daemon needs to serve that session again exactly as the first one did (src/daemon/held-session.ts).
 */
export interface HeldSession {
  v: 1;
  container: string;
  bundle: string;
  rootfs: string;
  readonly: boolean;
  /**
   * manifest digest
   */
  image: string;
  /**
   * tree index digest
   */
  index: string;
  /**
   * the store root the session serves from
   */
  store: string;
  /**
   * the placeholders of the first server, in its order (their node ids follow from it)
   *
   * @maxItems 256
   */
  placeholders: {
    path: string;
    type: 'dir' | 'file';
    mode?: number;
  }[];
  since: string;
}
