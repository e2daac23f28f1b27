// Generated from schemas/seccomp-profile.schema.json by scripts/gen-types.mjs. Do not edit.

export type Action =
  | 'SCMP_ACT_KILL'
  | 'SCMP_ACT_KILL_PROCESS'
  | 'SCMP_ACT_KILL_THREAD'
  | 'SCMP_ACT_TRAP'
  | 'SCMP_ACT_ERRNO'
  | 'SCMP_ACT_TRACE'
  | 'SCMP_ACT_ALLOW'
  | 'SCMP_ACT_LOG'
  | 'SCMP_ACT_NOTIFY';

/**
 * A seccomp profile in the containers/common (docker) format: the default /usr/share/containers/seccomp.json or --security-opt seccomp=FILE. strata converts it to the OCI linux.seccomp form as containers/common pkg/seccomp does. Argument values above 2^53-1 are refused: JSON numbers in JavaScript would round them silently.
 */
export interface SeccompProfile {
  defaultAction: Action;
  defaultErrnoRet?: number;
  defaultErrno?: string;
  architectures?: string[];
  archMap?: {
    architecture: string;
    subArchitectures?: string[];
  }[];
  syscalls?: Syscall[];
}
export interface Syscall {
  name?: string;
  names?: string[];
  action: Action;
  errnoRet?: number;
  errno?: string;
  comment?: string;
  args?: Arg[] | null;
  includes?: Filter;
  excludes?: Filter;
}
export interface Arg {
  index: number;
  value: number;
  valueTwo?: number;
  op:
    | 'SCMP_CMP_NE'
    | 'SCMP_CMP_LT'
    | 'SCMP_CMP_LE'
    | 'SCMP_CMP_EQ'
    | 'SCMP_CMP_GE'
    | 'SCMP_CMP_GT'
    | 'SCMP_CMP_MASKED_EQ';
}
export interface Filter {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}
