// Where the hook executable and the strata CLI live, as absolute paths: hooks run with no PATH
// and only the env their entry declares (docs/architecture.md#host-facts); the createRuntime hook starts the
// daemon from an argv it is given.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { NotFoundError } from './errors.js';

function firstExisting(rels: string[]): string | undefined {
  return rels.map((rel) => fileURLToPath(new URL(rel, import.meta.url))).find((p) => existsSync(p));
}

function nativeExecutable(name: string): string {
  // From src/ (tsx) or dist/src/ (compiled).
  const path = firstExisting([`../native/build/Release/${name}`, `../../native/build/Release/${name}`]);
  if (!path) {
    throw new NotFoundError(`the executable native/build/Release/${name} is not built; run \`npm install\``, {
      op: 'native-path',
    });
  }
  return path;
}

/** native/build/Release/strata-hook, built by `npm install` (node-gyp target strata-hook). */
export function hookExecutable(): string {
  return nativeExecutable('strata-hook');
}

/** native/build/Release/strata: the native front end of the CLI (native/front/strata.c). */
export function frontExecutable(): string {
  return nativeExecutable('strata');
}

/** native/build/Release/strata-runtime: the runc-compatible CLI (native/runtime/strata-runtime.c). */
export function runtimeExecutable(): string {
  return nativeExecutable('strata-runtime');
}

/**
 * The argv that runs a program of ours: node and the compiled `<rel>.js`, or, when running from
 * sources (tests), node with tsx's loader and `<rel>.ts`. `rel` is relative to the repo root.
 */
function nodeArgv(rel: string, args: string[]): string[] {
  const js = firstExisting([`../${rel}.js`, `../../${rel}.js`]);
  if (js) return [process.execPath, js, ...args];
  const ts = firstExisting([`../${rel}.ts`]);
  if (!ts) throw new NotFoundError(`cannot find ${rel}.js`, { op: 'cli-path' });
  return [process.execPath, '--import', import.meta.resolve('tsx'), ts, ...args];
}

/** The argv that starts the CLI with `args`. */
export function cliArgv(args: string[]): string[] {
  return nodeArgv('src/cli/main', args);
}

export interface DaemonLocation {
  storeRoot: string;
  socketPath: string;
  logFile?: string;
}

/** How long a daemon the hook started stays without a container: long enough for back-to-back
 * containers to share it, short enough that a runtime waiting for it (crun) is barely delayed. */
export const ON_DEMAND_EXIT_IDLE_S = 2;

/**
 * What the createRuntime hook runs when no daemon answers: the daemon's own entry
 * (src/daemon/main.ts) with --exit-idle. The daemon is born under the runtime's child subreaper
 * (crun, runc, conmon), and crun waits for it: it must leave once it serves nothing.
 */
export function daemonArgv(loc: DaemonLocation, exitIdleSeconds = ON_DEMAND_EXIT_IDLE_S): string[] {
  const extra = loc.logFile ? ['--log-file', loc.logFile] : [];
  return nodeArgv('src/daemon/main', [
    '--root',
    loc.storeRoot,
    '--socket',
    loc.socketPath,
    '--exit-idle',
    String(exitIdleSeconds),
    ...extra,
  ]);
}

/** A long-lived `strata daemon` (no idle exit), as `strata run` starts it before the runtime. */
export function serviceDaemonArgv(loc: DaemonLocation): string[] {
  const extra = loc.logFile ? ['--log-file', loc.logFile] : [];
  return cliArgv(['daemon', '--root', loc.storeRoot, '--socket', loc.socketPath, ...extra]);
}

/** native/build/Release/strata-agent: the VM guest agent built for this machine (static; the VM
 * image script copies it into the initramfs; tests run it with --stdio). For an arm64 guest on
 * another machine, strata-agent-arm64 (cross-built by native/vm/cross-build-arm64.sh). */
export function agentExecutable(arch?: 'amd64' | 'arm64'): string {
  const own = process.arch === 'arm64' ? 'arm64' : 'amd64';
  return nativeExecutable(arch === undefined || arch === own ? 'strata-agent' : `strata-agent-${arch}`);
}

/** scripts/build-vm-image.sh: builds the VM guest's kernel + initramfs (src/vm/image.ts). */
export function vmImageScript(): string {
  const path = firstExisting(['../scripts/build-vm-image.sh', '../../scripts/build-vm-image.sh']);
  if (!path) throw new NotFoundError('cannot find scripts/build-vm-image.sh', { op: 'vm-image' });
  return path;
}

/** native/build/Release/strata-fdholder: keeps FUSE device fds while no daemon runs
 * (native/holder/strata-fdholder.c). $STRATA_FDHOLDER overrides it (tests of another build). */
export function fdHolderExecutable(): string {
  return process.env.STRATA_FDHOLDER || nativeExecutable('strata-fdholder');
}

/** The daemon's own entry (src/daemon/main.ts, no yargs) with `args`: what the fd holder runs
 * to restart a daemon that died, the fastest way to start one. */
export function daemonMainArgv(args: string[]): string[] {
  return nodeArgv('src/daemon/main', args);
}
