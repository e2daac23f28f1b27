// runc for containerd tasks: one state root per containerd namespace (so two namespaces may hold
// the same task id), every call through execa. create and exec are given the process's stdio fds
// and --log: what runc says when it fails comes from that log, since its stderr is the
// container's.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { execa } from 'execa';

import { FailedPreconditionError, NotFoundError } from '../errors.js';
import type { ChildStdio } from './stdio.js';

export interface RuncOptions {
  binary: string;
  root: string;
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
    const r = await execa(this.opts.binary, this.argv(args), {
      reject: false,
      env: runcEnv(),
      extendEnv: false,
      stdin: input === undefined ? 'ignore' : 'pipe',
      input,
      stdout: 'pipe',
      stderr: 'pipe',
    });
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
    // node:child_process, not execa: execa takes no parent fds other than 0-2 as a child's stdio.
    const child = spawn(this.opts.binary, ['--log', logFile, '--log-format', 'json', ...this.argv(args)], {
      stdio: [...stdio],
      env: runcEnv(),
    });
    const exitCode = await new Promise<number>((resolve) => {
      child.once('error', () => resolve(-1));
      child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? osConstants.signals[signal] : 0)));
    });
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

  async start(id: string): Promise<void> {
    await this.run(['start', id], `runc start ${id}`);
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
