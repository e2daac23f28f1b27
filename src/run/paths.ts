// Where `strata run` keeps its containers. One run directory (tmpfs in production: containers do
// not survive a reboot, and neither should their records):
//
//   <run dir>/                      default /run/strata ($STRATA_RUN_DIR, --run-dir)
//     containers/<id>/state.json    the container record (record.ts)
//     containers/<id>/bundle/       config.json, empty rootfs/, hosts, hostname, resolv.conf
//     containers/<id>/container.log stdout+stderr of a detached container
//     containers/<id>/exit-code     written by a detached container's monitor when it ends
//     containers/<id>/pid           the runtime's --pid-file: written once the container is created
//     names/<name> -> <id>          symlink: a name is taken by creating it (atomic, EEXIST)
//     runc/, crun/                  the runtimes' own state (--root), private to strata
//
// The daemon's socket defaults to /run/strata/strata.sock, in the same directory.
import { join } from 'node:path';

export const DEFAULT_RUN_DIR = '/run/strata';

/** --run-dir > $STRATA_RUN_DIR > /run/strata */
export function resolveRunDir(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return explicit || env.STRATA_RUN_DIR || DEFAULT_RUN_DIR;
}

export function containersDir(runDir: string): string {
  return join(runDir, 'containers');
}

export function containerDir(runDir: string, id: string): string {
  return join(runDir, 'containers', id);
}

export function bundleDir(runDir: string, id: string): string {
  return join(containerDir(runDir, id), 'bundle');
}

export function statePath(runDir: string, id: string): string {
  return join(containerDir(runDir, id), 'state.json');
}

export function logPath(runDir: string, id: string): string {
  return join(containerDir(runDir, id), 'container.log');
}

export function exitCodePath(runDir: string, id: string): string {
  return join(containerDir(runDir, id), 'exit-code');
}

/** Written by the runtime (--pid-file) only once the container exists: its absence after a failed
 * `run` means the runtime failed before the container's process was started (a hook, a mount). */
export function pidFilePath(runDir: string, id: string): string {
  return join(containerDir(runDir, id), 'pid');
}

export function namesDir(runDir: string): string {
  return join(runDir, 'names');
}

export function namePath(runDir: string, name: string): string {
  return join(runDir, 'names', name);
}

/** The runtime's --root: strata's containers live apart from anything else run with runc/crun. */
export function runtimeRoot(runDir: string, runtime: string): string {
  return join(runDir, runtime);
}
