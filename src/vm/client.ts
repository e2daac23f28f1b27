// `strata run --vm`: finds (or starts) the VM host of a state directory, builds the process the
// same way a host container's config.json is built (the image's config, -e/-w/-u/--entrypoint,
// src/spec/runtime-config.ts), and runs it through the host with this process's stdio, window
// size and signals. The exit code is the process's.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';

import { NATIVE_CONTRACT } from '../contract/generated/native-contract.js';
import { InvalidArgumentError, UnavailableError } from '../errors.js';
import { cliArgv } from '../executables.js';
import type { RunArgs } from '../run/args.js';
import { commandProblem, type CommandProblem } from '../run/command-check.js';
import { parseAndValidate } from '../schema/validate.js';
import { checkBindSources, parseMount, parseVolume } from '../spec/options.js';
import { buildRuntimeConfig, type ImageConfigInput } from '../spec/runtime-config.js';
import { readImageFile } from '../store/image-file.js';
import { blobPath } from '../store/layout.js';
import { lockFile } from '../store/lock.js';
import { loadTreeIndex, resolveImageRecord } from '../store/records.js';
import { AgentSession } from './agent-session.js';
import { hostRunning, hostSocket, pidAlive, readVmState } from './host.js';
import type { ExecSpec } from './protocol.js';

export const DEFAULT_VM_NAME = 'default';

export function vmStateDir(runDir: string, name = DEFAULT_VM_NAME): string {
  return join(runDir, 'vm', name);
}

function connectSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', reject);
  });
}

function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export interface EnsureHostOptions {
  stateDir: string;
  storeRoot: string;
  /** How long a booting VM may take (TCG under load is slow). Default 180 s. */
  timeoutMs?: number;
}

/** A connection to the VM host of `stateDir`, starting one (and the VM) when none runs. */
export async function ensureHost(opts: EnsureHostOptions): Promise<Socket> {
  const dir = opts.stateDir;
  if (hostRunning(dir)) {
    const st = readVmState(dir);
    if (st && st.storeRoot !== opts.storeRoot) {
      throw new InvalidArgumentError(
        `the VM ${dir} serves the store ${st.storeRoot}, not ${opts.storeRoot}`,
        {
          op: 'vm-run',
        },
      );
    }
    try {
      return await connectSocket(hostSocket(dir));
    } catch {
      // stopping right now: start a new one below
    }
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lock = await lockFile(join(dir, 'start.lock'), 'exclusive');
  try {
    if (hostRunning(dir)) {
      try {
        return await connectSocket(hostSocket(dir));
      } catch {
        // a host that is going away: start a new one
      }
    }
    const log = join(dir, 'host.log');
    const fd = openSync(log, 'w');
    const argv = cliArgv(['vm', 'serve', '--state-dir', dir, '--root', opts.storeRoot]);
    const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    child.unref();
    let exited = false;
    child.once('exit', () => (exited = true));
    const deadline = Date.now() + (opts.timeoutMs ?? 180_000);
    for (;;) {
      if (existsSync(hostSocket(dir)) && readVmState(dir)) {
        try {
          return await connectSocket(hostSocket(dir));
        } catch {
          // not listening yet
        }
      }
      if (exited || (child.pid !== undefined && !pidAlive(child.pid))) {
        throw new UnavailableError(`the VM did not start:\n${tail(log)}`, { op: 'vm-start', path: log });
      }
      if (Date.now() > deadline) {
        throw new UnavailableError(
          `the VM did not start within ${opts.timeoutMs ?? 180_000} ms (see ${log})`,
          {
            op: 'vm-start',
          },
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await lock.release();
  }
}

/** The process of `args` as the container's config.json would have it. `commandProblem` says, for
 * a run that failed with crun's exit code 1, whether the image lacks the command (podman's 127/126). */
export async function buildVmExec(
  storeRoot: string,
  args: RunArgs,
): Promise<ExecSpec & { commandProblem: () => CommandProblem | undefined }> {
  const image = await resolveImageRecord(storeRoot, args.image);
  const imageConfig = parseAndValidate<ImageConfigInput>(
    'oci-image-config',
    readFileSync(blobPath(storeRoot, image.configDigest)),
    `config ${image.configDigest} of image ${args.image}`,
  );
  const index = loadTreeIndex(storeRoot, image);
  const guest = NATIVE_CONTRACT.vm.guest;
  const config = buildRuntimeConfig(
    imageConfig,
    {
      ...args,
      // -v sources are host paths here; the VM host shares them into the guest and rewrites them.
      mounts: checkBindSources([...args.volumes.map(parseVolume), ...args.mountSpecs.map(parseMount)]),
      // The agent itself is the guest's strata-hook: it hands the hook the FUSE root to attach.
      hooks: { createContainer: [{ path: guest.agent, args: ['strata-agent', '--hook', guest.hookSocket] }] },
    },
    (path) => readImageFile(index, storeRoot, path),
  );
  const proc = config.process!;
  // runInVm turns it on for -t on a terminal (crun then sends the agent the pty's master).
  proc.terminal = false;
  // The hook's complaints reach the user's stderr (crun opens the path in its own process; without
  // it crun drops a hook's output).
  config.annotations = { ...config.annotations, 'run.oci.hooks.stderr': '/proc/self/fd/2' };
  return {
    commandProblem: () => commandProblem(index, config),
    config: JSON.stringify(config),
    argv: proc.args ?? [],
    env: proc.env ?? [],
    cwd: proc.cwd,
    uid: proc.user?.uid ?? 0,
    gid: proc.user?.gid ?? 0,
    hostname: config.hostname,
    writable: !args.readOnly,
    image: image.manifestDigest,
  };
}

export interface VmRunOptions {
  storeRoot: string;
  runDir: string;
  args: RunArgs;
}

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

export async function runInVm(opts: VmRunOptions): Promise<number> {
  const { args } = opts;
  if (args.detach && args.interactive)
    throw new InvalidArgumentError("--vm -d takes no -i: nothing reads a detached container's stdin", {
      op: 'vm-run',
    });
  const { commandProblem: problem, ...spec } = await buildVmExec(opts.storeRoot, args);
  // -d: the VM host keeps the container and its log; it answers with the container's id.
  if (args.detach) spec.detach = true;
  const tty = !args.detach && args.tty && process.stdout.isTTY === true;
  if (tty) {
    spec.tty = { rows: process.stdout.rows ?? 24, cols: process.stdout.columns ?? 80 };
    // crun makes the container's pty in its own devpts (ttyname, job control) and hands the agent
    // its master over a console socket.
    const config = JSON.parse(spec.config!) as { process: { terminal?: boolean } };
    config.process.terminal = true;
    spec.config = JSON.stringify(config);
  }
  const sock = await ensureHost({ stateDir: vmStateDir(opts.runDir), storeRoot: opts.storeRoot });
  const session = new AgentSession(sock, { helloTimeoutMs: 10_000 });
  await session.start();
  const stdin = args.interactive ? process.stdin : null;
  const p = session.exec(spec, { stdin, stdout: process.stdout, stderr: process.stderr });
  const handlers = new Map<string, () => void>();
  for (const name of FORWARDED) {
    const h = () => p.signal(signalNumber(name));
    handlers.set(name, h);
    process.on(name, h);
  }
  const onResize = () => p.resize({ rows: process.stdout.rows ?? 24, cols: process.stdout.columns ?? 80 });
  if (tty) {
    if (process.stdin.isTTY) process.stdin.setRawMode(true);
    process.stdout.on('resize', onResize);
  }
  try {
    const status = await p.exited;
    // crun says "executable file ... not found" and exits 1, as on a host: podman's 127/126 then.
    if (status.code === 1 && status.signal === undefined) return problem()?.code ?? 1;
    return status.code;
  } finally {
    for (const [name, h] of handlers) process.off(name, h);
    if (tty) {
      process.stdout.off('resize', onResize);
      if (process.stdin.isTTY) process.stdin.setRawMode(false);
    }
    process.stdin.pause();
    session.close();
  }
}

/** A command in the guest itself (its busybox, crun), as root, in a running VM: debugging, and the
 * tests' look for leftovers in the guest. Never boots a VM. */
export async function execInGuest(stateDir: string, argv: string[]): Promise<number> {
  if (argv.length === 0)
    throw new InvalidArgumentError('strata vm exec: no command (strata vm exec -- CMD ...)');
  if (!hostRunning(stateDir)) throw new UnavailableError(`no VM runs in ${stateDir}`, { op: 'vm-exec' });
  const session = new AgentSession(await connectSocket(hostSocket(stateDir)), { helloTimeoutMs: 10_000 });
  try {
    await session.start();
    const p = session.exec(
      { argv, env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], rootPath: '/' },
      { stdout: process.stdout, stderr: process.stderr },
    );
    return (await p.exited).code;
  } finally {
    session.close();
  }
}

function signalNumber(name: (typeof FORWARDED)[number]): number {
  return { SIGINT: 2, SIGTERM: 15, SIGHUP: 1, SIGQUIT: 3, SIGUSR1: 10, SIGUSR2: 12 }[name];
}

/** podman's codes for a command that could not be run: 127 not found, 126 not executable. */
export function execFailureCode(err: unknown): number | undefined {
  const msg = err instanceof Error ? err.message : '';
  if (/in the VM: exec .*No such file or directory/.test(msg)) return 127;
  if (/in the VM: exec .*(Permission denied|Exec format error)/.test(msg)) return 126;
  return undefined;
}
