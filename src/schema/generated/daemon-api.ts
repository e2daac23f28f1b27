// Generated from schemas/daemon-api.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * The strata daemon's JSON API: one JSON object per line on the daemon socket, each request answered by one response line. Hook requests (native/hook/strata-hook.c) share the socket but use their own line protocol (src/daemon/hook-protocol.ts).
 */
export type DaemonApiMessage = DaemonRequest | DaemonResponse;

export interface DaemonRequest {
  /**
   * handover: stop serving and leave every session to the daemon that asks (strata daemon --upgrade)
   */
  op: 'ping' | 'status' | 'list' | 'release' | 'handover';
  /**
   * release: the container id
   */
  id?: string;
}
export interface DaemonResponse {
  ok: boolean;
  error?: {
    kind: string;
    message: string;
  };
  status?: DaemonStatus;
  containers?: ServedContainer[];
  /**
   * release: whether the daemon held anything for the id
   */
  released?: boolean;
}
export interface DaemonStatus {
  pid: number;
  version: string;
  store: string;
  socket: string;
  logFile: string;
  startedAt: string;
  containers: number;
  cachedIndexes: number;
}
export interface ServedContainer {
  id: string;
  image: string;
  bundle: string;
  /**
   * prepared: mount made, waiting for createContainer; attached: handed to the container
   */
  state: 'prepared' | 'attached';
  since: string;
  readonly: boolean;
}
