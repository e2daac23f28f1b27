// Generated from schemas/hook-state.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * The OCI runtime state a hook receives on stdin (runtime-spec runtime.md#state). pid is absent in podman's own poststop and useless at createContainer (runc passes 1, crun 0).
 */
export interface HookState {
  ociVersion: string;
  id: string;
  status: 'creating' | 'created' | 'running' | 'stopped' | 'paused';
  pid?: number;
  bundle: string;
  annotations?: {
    [k: string]: string;
  };
}
