// Generated from schemas/runtime-config.schema.json by scripts/gen-types.mjs. Do not edit.

export type Uint32 = number;
export type StringArray = string[];
export type CapabilityList = string[];
export type HookList = Hook[];

/**
 * The OCI runtime config.json (runtime-spec 1.0.2), the subset strata writes and reads. Objects stay open so that configs written by podman or containerd (seccomp, resources, ...) still load; test/spec/runtime-config.test.ts checks what strata writes against the official schema too.
 */
export interface RuntimeConfig {
  ociVersion: string;
  process?: Process;
  root: {
    path: string;
    readonly?: boolean;
  };
  hostname?: string;
  domainname?: string;
  mounts?: Mount[];
  hooks?: Hooks;
  annotations?: StringMap;
  linux?: Linux;
}
export interface Process {
  terminal?: boolean;
  user?: User;
  args?: StringArray;
  env?: StringArray;
  cwd: string;
  capabilities?: Capabilities;
  rlimits?: Rlimit[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  selinuxLabel?: string;
}
export interface User {
  uid: Uint32;
  gid: Uint32;
  umask?: Uint32;
  additionalGids?: Uint32[];
  username?: string;
}
export interface Capabilities {
  bounding?: CapabilityList;
  effective?: CapabilityList;
  inheritable?: CapabilityList;
  permitted?: CapabilityList;
  ambient?: CapabilityList;
}
export interface Rlimit {
  type: string;
  soft: number;
  hard: number;
}
export interface Mount {
  destination: string;
  type?: string;
  source?: string;
  options?: StringArray;
}
export interface Hooks {
  prestart?: HookList;
  createRuntime?: HookList;
  createContainer?: HookList;
  startContainer?: HookList;
  poststart?: HookList;
  poststop?: HookList;
}
export interface Hook {
  path: string;
  args?: StringArray;
  env?: StringArray;
  timeout?: number;
}
export interface StringMap {
  [k: string]: string;
}
export interface Linux {
  namespaces?: Namespace[];
  maskedPaths?: StringArray;
  readonlyPaths?: StringArray;
  rootfsPropagation?: 'private' | 'shared' | 'slave' | 'unbindable';
  cgroupsPath?: string;
  sysctl?: StringMap;
  /**
   * not written by strata: devices rules need CAP_SYS_RESOURCE for crun's eBPF filter
   */
  resources?: {};
  seccomp?: {};
}
export interface Namespace {
  type: 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup' | 'time';
  path?: string;
}
