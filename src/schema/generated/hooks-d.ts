// Generated from schemas/hooks-d.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * One podman/CRI-O hooks.d file (containers/common pkg/hooks, version 1.0.0): a hook, when it applies (conditions are ANDed), and the stages it runs at.
 */
export interface HooksDConfig {
  version: '1.0.0';
  hook: {
    path: string;
    args?: string[];
    env?: string[];
    timeout?: number;
  };
  when: {
    always?: boolean;
    annotations?: {
      [k: string]: string;
    };
    commands?: string[];
    hasBindMounts?: boolean;
  };
  /**
   * @minItems 1
   */
  stages: [
    (
      | 'precreate'
      | 'prestart'
      | 'createRuntime'
      | 'createContainer'
      | 'startContainer'
      | 'poststart'
      | 'poststop'
    ),
    ...(
      | 'precreate'
      | 'prestart'
      | 'createRuntime'
      | 'createContainer'
      | 'startContainer'
      | 'poststart'
      | 'poststop'
    )[],
  ];
}
