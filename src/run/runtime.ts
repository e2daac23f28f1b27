// The OCI runtime strata drives: which one, and the argv for each of its subcommands. crun 1.8
// refuses a v1+v2 hybrid cgroup layout (docs/architecture.md#host-facts); there every crun call runs in a
// private mount namespace with a pure cgroup2 mount on /sys/fs/cgroup, which is the unified
// hierarchy the host already has — crun then sees a cgroup v2 system and works. runc needs nothing.
import { accessSync, constants, existsSync, statfsSync } from 'node:fs';
import { join } from 'node:path';

import { FailedPreconditionError } from '../errors.js';
import type { RuntimeName } from './record.js';
import { runtimeRoot } from './paths.js';

export const CGROUP2_SUPER_MAGIC = 0x63677270;

export interface Runtime {
  name: RuntimeName;
  /** Absolute path of crun or runc. */
  binary: string;
  /** Its --root (state directory), private to strata. */
  root: string;
  /** Absolute path of unshare(1) when crun needs the cgroup2 namespace, else undefined. */
  unshare?: string;
}

/** statfs f_type of /sys/fs/cgroup and of /sys/fs/cgroup/unified (undefined when absent). */
export interface CgroupMounts {
  top?: number;
  unified?: number;
}

/** Hybrid: the top is not cgroup2 but a cgroup2 hierarchy sits at unified/ — what crun 1.8 refuses. */
export function isHybridCgroups(m: CgroupMounts): boolean {
  return m.top !== CGROUP2_SUPER_MAGIC && m.unified === CGROUP2_SUPER_MAGIC;
}

function fsType(path: string): number | undefined {
  try {
    return statfsSync(path).type;
  } catch {
    return undefined;
  }
}

export function hostCgroupMounts(): CgroupMounts {
  return { top: fsType('/sys/fs/cgroup'), unified: fsType('/sys/fs/cgroup/unified') };
}

/** The executable `name` on $PATH (plus the sbin dirs a root shell may lack), or undefined. */
export function findExecutable(name: string, path = process.env.PATH ?? ''): string | undefined {
  const dirs = [
    ...path.split(':').filter(Boolean),
    '/usr/local/sbin',
    '/usr/sbin',
    '/sbin',
    '/usr/bin',
    '/bin',
  ];
  for (const dir of dirs) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

function crun(runDir: string, cgroups: CgroupMounts): Runtime | undefined {
  const binary = findExecutable('crun');
  if (!binary) return undefined;
  const rt: Runtime = { name: 'crun', binary, root: runtimeRoot(runDir, 'crun') };
  if (isHybridCgroups(cgroups)) {
    rt.unshare = findExecutable('unshare');
    if (!rt.unshare) return undefined;
  }
  return rt;
}

function runc(runDir: string): Runtime | undefined {
  const binary = findExecutable('runc');
  return binary ? { name: 'runc', binary, root: runtimeRoot(runDir, 'runc') } : undefined;
}

/**
 * The runtime to use: `requested` (--runtime, else $STRATA_RUNTIME) or, by default, crun when it
 * works on this host (present, and the cgroup workaround available when needed), else runc.
 */
export function selectRuntime(
  runDir: string,
  requested: RuntimeName | undefined = process.env.STRATA_RUNTIME as RuntimeName | undefined,
  cgroups: CgroupMounts = hostCgroupMounts(),
): Runtime {
  if (requested !== undefined && requested !== 'crun' && requested !== 'runc') {
    throw new FailedPreconditionError(`$STRATA_RUNTIME "${String(requested)}": strata runs crun or runc`);
  }
  const rt =
    requested === 'runc'
      ? runc(runDir)
      : requested === 'crun'
        ? crun(runDir, cgroups)
        : (crun(runDir, cgroups) ?? runc(runDir));
  if (!rt) {
    throw new FailedPreconditionError(
      requested === 'crun' && findExecutable('crun')
        ? 'crun needs unshare(1) on this host (hybrid cgroups); install util-linux or use --runtime runc'
        : `no OCI runtime found: install ${requested ?? 'crun or runc'}`,
    );
  }
  return rt;
}

/** The runtime `name` as recorded for an existing container (ps, stop, rm). */
export function runtimeFor(runDir: string, name: RuntimeName): Runtime {
  return selectRuntime(runDir, name);
}

/** The runtime's own argv for `args` (after its global --root), with no namespace wrapper. */
export function runtimeArgv(rt: Runtime, args: string[]): string[] {
  return [rt.binary, '--root', rt.root, ...args];
}

/** [command, args] that run `rt` with `args`, in a cgroup2 namespace of its own when it needs one. */
export function runtimeCommand(rt: Runtime, args: string[]): [string, string[]] {
  const argv = runtimeArgv(rt, args);
  if (!rt.unshare) return [argv[0], argv.slice(1)];
  // unshare execs sh in the new namespace (no fork), sh execs crun: the pid strata sees is crun's,
  // so signals sent to it reach crun, which forwards them to the container.
  return [
    rt.unshare,
    [
      '-m',
      '--propagation',
      'private',
      '/bin/sh',
      '-c',
      'mount -t cgroup2 none /sys/fs/cgroup && exec "$@"',
      'sh',
      ...argv,
    ],
  ];
}

/** Whether the runtime still holds state for `id` (a file check; no process spawned). */
export function runtimeKnows(rt: Runtime, id: string): boolean {
  return existsSync(join(rt.root, id));
}
