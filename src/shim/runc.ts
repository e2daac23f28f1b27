// runc for containerd tasks: one state root per containerd namespace (so two namespaces may hold
// the same task id). create and exec are given the process's stdio fds and --log: what runc says
// when it fails comes from that log, since its stderr is the container's.
//
// runc is started with posix_spawn (the addon's spawnFast), not node:child_process or execa:
// libuv forks, which copies the daemon's page tables while the event loop waits (about 9 ms for a
// small Node process and 27 ms for one with 80 MB resident, at load 18 on this machine), three or
// four times per container. Its exit comes through the task service's reaper (pidfd + SIGCHLD).
// (execa's rule, child processes from TS through execa, gives way here: execa cannot do this.)
import { closeSync, constants as fsc, lstatSync, openSync, readFileSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';

import { FailedPreconditionError, NotFoundError } from '../errors.js';
import { native } from '../native-addon.js';
import type { Reaper } from './reaper.js';
import type { ChildStdio } from './stdio.js';

export interface RuncOptions {
  binary: string;
  root: string;
  /** Collects runc's exits (it is our child). */
  reaper: Reaper;
}

export interface Collected {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** `binary args` started with spawnFast, `input` on its stdin; its output and exit status. */
export async function spawnCollect(
  reaper: Reaper,
  binary: string,
  args: string[],
  input?: string,
): Promise<Collected> {
  const [outR, outW] = native.pipe();
  const [errR, errW] = native.pipe();
  const [inR, inW] = input === undefined ? [-1, -1] : native.pipe();
  let status: Promise<number>;
  try {
    status = spawnWait(reaper, binary, args, [inR, outW, errW]);
  } catch (err) {
    for (const fd of [outR, errR, inW]) if (fd >= 0) closeSync(fd);
    throw err;
  } finally {
    for (const fd of [outW, errW, inR]) if (fd >= 0) closeSync(fd);
  }
  if (inW >= 0) {
    const s = new Socket({ fd: inW, readable: false, writable: true });
    s.on('error', () => undefined);
    s.write(input ?? '', () => s.destroy());
  }
  const [stdout, stderr, exitCode] = await Promise.all([readAll(outR), readAll(errR), status]);
  return { stdout: stdout.replace(/\n$/, ''), stderr: stderr.replace(/\n$/, ''), exitCode };
}

/** `binary args` with `fds` as its fd 0, 1, 2 (-1: /dev/null); resolves with its exit status. */
export function spawnWait(reaper: Reaper, binary: string, args: string[], fds: number[]): Promise<number> {
  const env = Object.entries(runcEnv())
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  const pid = native.spawnFast(binary, [binary, ...args], env, fds);
  return new Promise((resolve) => reaper.watch(pid, (e) => resolve(e.status)));
}

/** Everything read from `fd` (a pipe's read end, which this takes over) until its end. */
function readAll(fd: number): Promise<string> {
  return new Promise((resolve) => {
    const s = new Socket({ fd, readable: true, writable: false });
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', () => undefined);
    s.once('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/** The last error runc wrote to its JSON log, else undefined. */
export function lastRuncError(logText: string): string | undefined {
  let msg: string | undefined;
  for (const line of logText.split('\n')) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as { level?: string; msg?: string };
      if ((e.level === 'error' || e.level === 'fatal') && typeof e.msg === 'string') msg = e.msg;
    } catch {
      msg = line.trim();
    }
  }
  return msg;
}

/** The daemon's environment without what runc would take as its own: NOTIFY_SOCKET (the daemon's
 * readiness socket; runc would relay the container's sd_notify there). */
export function runcEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env };
  delete out.NOTIFY_SOCKET;
  delete out.LISTEN_FDS;
  delete out.LISTEN_PID;
  return out;
}

export class Runc {
  constructor(readonly opts: RuncOptions) {}

  private argv(args: string[]): string[] {
    return ['--root', this.opts.root, ...args];
  }

  /** A short command; its stderr becomes the error. */
  private async run(args: string[], what: string, input?: string): Promise<string> {
    let r: Collected;
    try {
      r = await spawnCollect(this.opts.reaper, this.opts.binary, this.argv(args), input);
    } catch (err) {
      throw new FailedPreconditionError(`${what}: ${(err as Error).message}`); // runc not found
    }
    if (r.exitCode !== 0) {
      const msg = (r.stderr || r.stdout || `exit ${r.exitCode}`)
        .trim()
        .replace(/^time="[^"]*" level=\w+ msg="(.*)"$/s, '$1');
      if (/does not exist|not exist|container not found/.test(msg))
        throw new NotFoundError(`${what}: ${msg}`);
      throw new FailedPreconditionError(`${what}: ${msg}`);
    }
    return r.stdout;
  }

  /** create/exec: the child keeps `stdio`; errors come from its --log. */
  private async spawnWithStdio(
    args: string[],
    stdio: ChildStdio,
    logFile: string,
    what: string,
  ): Promise<void> {
    rmSync(logFile, { force: true });
    let exitCode: number;
    try {
      exitCode = await spawnWait(
        this.opts.reaper,
        this.opts.binary,
        ['--log', logFile, '--log-format', 'json', ...this.argv(args)],
        stdio.map((fd) => (fd === 'ignore' ? -1 : fd)),
      );
    } catch (err) {
      throw new FailedPreconditionError(`${what}: ${(err as Error).message}`);
    }
    if (exitCode !== 0) {
      let text = '';
      try {
        text = readFileSync(logFile, 'utf8');
      } catch {
        // no log written
      }
      throw new FailedPreconditionError(`${what}: ${lastRuncError(text) ?? `runc exited with ${exitCode}`}`);
    }
  }

  create(
    id: string,
    bundle: string,
    pidFile: string,
    stdio: ChildStdio,
    consoleSocket?: string,
  ): Promise<void> {
    const args = ['create', '--bundle', bundle, '--pid-file', pidFile];
    if (consoleSocket) args.push('--console-socket', consoleSocket);
    return this.spawnWithStdio([...args, id], stdio, join(bundle, 'strata-runc.log'), `runc create ${id}`);
  }

  exec(
    id: string,
    processFile: string,
    pidFile: string,
    stdio: ChildStdio,
    logFile: string,
    consoleSocket?: string,
  ): Promise<void> {
    const args = ['exec', '--detach', '--process', processFile, '--pid-file', pidFile];
    if (consoleSocket) args.push('--console-socket', consoleSocket);
    return this.spawnWithStdio([...args, id], stdio, logFile, `runc exec ${id}`);
  }

  /**
   * Starts a created container. What `runc start` does (runc 1.1 libcontainer `exec()`: its
   * poststart hooks already ran at create) is done here without a runc process: open
   * `<root>/<id>/exec.fifo` for reading (non-blocking: runc init waits in its open for writing,
   * writes "0", then execs the process, which closes its end), read to the end, remove the fifo
   * (runc's state is `running` once it is gone). Without the fifo (another runc, or the container
   * not in `created`), `runc start` itself. `exited`: the init's end, which ends the wait
   * (runc's own check: "container process is already dead").
   */
  async start(id: string, exited?: Promise<unknown>): Promise<void> {
    const fifo = join(this.opts.root, id, 'exec.fifo');
    let fd: number;
    try {
      if (!lstatSync(fifo).isFIFO()) throw new Error('not a fifo');
      fd = openSync(fifo, fsc.O_RDONLY | fsc.O_NONBLOCK);
    } catch {
      await this.run(['start', id], `runc start ${id}`);
      return;
    }
    const data = await new Promise<number>((resolve) => {
      const s = new Socket({ fd, readable: true, writable: false });
      let n = 0;
      s.on('data', (d: Buffer) => (n += d.length));
      s.on('error', () => undefined);
      s.once('close', () => resolve(n));
      void exited?.then(() => setTimeout(() => s.destroy(), 50));
    });
    if (data <= 0)
      throw new FailedPreconditionError(`runc start ${id}: the container's process is already dead`);
    rmSync(fifo, { force: true });
  }

  async kill(id: string, signal: number, all = false): Promise<void> {
    await this.run(['kill', ...(all ? ['--all'] : []), id, String(signal)], `runc kill ${id}`);
  }

  async delete(id: string, force = false): Promise<void> {
    await this.run(['delete', ...(force ? ['--force'] : []), id], `runc delete ${id}`);
  }

  async pause(id: string): Promise<void> {
    await this.run(['pause', id], `runc pause ${id}`);
  }

  async resume(id: string): Promise<void> {
    await this.run(['resume', id], `runc resume ${id}`);
  }

  async ps(id: string): Promise<number[]> {
    const out = await this.run(['ps', '--format', 'json', id], `runc ps ${id}`);
    const pids = JSON.parse(out || '[]') as unknown;
    return Array.isArray(pids) ? pids.filter((p): p is number => Number.isInteger(p)) : [];
  }

  async update(id: string, resourcesJson: string): Promise<void> {
    await this.run(['update', '--resources', '-', id], `runc update ${id}`, resourcesJson);
  }

  /** `runc events --stats`: the cgroup statistics of the container, as runc's JSON. */
  async stats(id: string): Promise<RuncStats> {
    const out = await this.run(['events', '--stats', id], `runc events --stats ${id}`);
    const e = JSON.parse(out) as { data?: RuncStats };
    return e.data ?? {};
  }
}

/** The parts of runc's `events --stats` data the shim reports (libcontainer/intelrdt types.Stats). */
export interface RuncStats {
  cpu?: {
    usage?: { total?: number; percpu?: number[]; kernel?: number; user?: number };
    throttling?: { periods?: number; throttledPeriods?: number; throttledTime?: number };
  };
  memory?: {
    cache?: number;
    usage?: MemoryEntry;
    swap?: MemoryEntry;
    kernel?: MemoryEntry;
    kernelTCP?: MemoryEntry;
    raw?: Record<string, number>;
  };
  pids?: { current?: number; limit?: number };
}

export interface MemoryEntry {
  limit?: number;
  usage?: number;
  max?: number;
  failcnt?: number;
}
