// A private, real containerd (Debian's 1.6) for the shim, CRI and import tests: its own config with
// root, state, gRPC and ttrpc sockets under a temp dir; the CRI plugin with host-network pods only
// (no CNI) and `sandbox_image` pointing at a locally imported pause image (Debian's catatonit);
// runtime handlers `runc` (the stock shim) and `strata` (`io.containerd.strata.v2`); and PATH
// prefixed with directories of the test's choice, where containerd finds `containerd-shim-NAME-v2`.
//
// `close()` removes every container the test left, stops containerd, then asserts that nothing is
// left: no process of this containerd (itself, its shims: their argv names the temp dir; the
// tasks' pids), no mount under its root or state, no shim socket in /run/containerd/s of the ids
// it ran (containerd 1.6 puts them there whatever its state dir: sha256 of "ADDRESS/NS/ID").
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  mkdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';

import { busyboxImage, debianImage } from '../fixtures/images.js';
import { mountsUnder, unmountAll } from '../fixtures/mounts.js';
import { PAUSE_IMAGE, pauseImageArchive } from '../fixtures/pause-image.js';
import { eventually, isAlive, runCollect, type Env, type RunResult } from './harness.js';

export { PAUSE_IMAGE } from '../fixtures/pause-image.js';

/** containerd's namespace for CRI (Kubernetes) objects. */
export const K8S_NAMESPACE = 'k8s.io';
/** The names `importTestImages` gives the fixtures (tag `latest`). */
export const CONTAINERD_IMAGES = {
  busybox: 'localhost/strata-test/busybox:latest',
  debian: 'localhost/strata-test/debian:latest',
} as const;
/** The shim socket directory of containerd 1.6, fixed at build time. */
export const SHIM_SOCKET_DIR = '/run/containerd/s';

export interface RuntimeEntry {
  /** e.g. `io.containerd.strata.v2` (containerd runs `containerd-shim-strata-v2` from PATH). */
  runtimeType: string;
  /** Absolute shim path instead of the PATH lookup (`runtime_path`, containerd ≥ 1.6.?). */
  runtimePath?: string;
  /** TOML lines for the runtime's `options` table, e.g. `BinaryName = "/x/runc"`. */
  options?: string[];
  /** CRI container annotations passed into the OCI spec (`container_annotations`), e.g. `org.strata.*`. */
  containerAnnotations?: string[];
}

export interface ContainerdOptions {
  /** Directories put in front of containerd's PATH (where it finds `containerd-shim-NAME-v2`). */
  shimPath?: string[];
  /** The CRI plugin (default on). */
  cri?: boolean;
  /** CRI runtime handlers besides `runc`; default `{ strata: { runtimeType: 'io.containerd.strata.v2' } }`. */
  runtimes?: Record<string, RuntimeEntry>;
  /** Extra environment for containerd (and so for the shims it starts). */
  env?: Record<string, string>;
  /** A strata test store (harness.ts `makeEnv`): this worktree's containerd-shim-strata-v2 goes
   * first on PATH (`<dir>/bin`) and the store's socket, root and log file into the environment,
   * so `io.containerd.strata.v2` reaches a daemon on that store (the shim starts it on demand). */
  strata?: Env;
}

/** native/build/Release/containerd-shim-strata-v2, from test/ (tsx) or dist/test/ (tsc). */
export function strataShimExecutable(): string {
  const found = ['../../native/build/Release/', '../../../native/build/Release/']
    .map((r) => fileURLToPath(new URL(`${r}containerd-shim-strata-v2`, import.meta.url)))
    .find((p) => existsSync(p));
  if (!found) throw new Error('containerd-shim-strata-v2 is not built: run `npm install`');
  return found;
}

/** The environment that points strata's shim (and the daemon it starts) at a test store. */
export function strataEnv(env: Env): Record<string, string> {
  return { STRATA_SOCKET: env.socket, STRATA_ROOT: env.storeRoot, STRATA_LOG_FILE: env.logFile };
}

function tomlString(s: string): string {
  return JSON.stringify(s); // TOML basic strings share JSON's escapes for what paths contain
}

function configToml(dir: string, opts: ContainerdOptions): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  const runtimes: Record<string, RuntimeEntry> = {
    runc: { runtimeType: 'io.containerd.runc.v2' },
    ...(opts.runtimes ?? { strata: { runtimeType: 'io.containerd.strata.v2' } }),
  };
  const lines = [
    'version = 2',
    `root = ${tomlString(join(dir, 'root'))}`,
    `state = ${tomlString(join(dir, 'state'))}`,
    'oom_score = 0',
    ...(opts.cri === false ? ['disabled_plugins = ["io.containerd.grpc.v1.cri"]'] : []),
    '[grpc]',
    `  address = ${tomlString(join(dir, 'c.sock'))}`,
    '[ttrpc]',
    `  address = ${tomlString(join(dir, 'c.sock.ttrpc'))}`,
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${tomlString(join(dir, 'opt'))}`,
  ];
  if (opts.cri !== false) {
    lines.push(
      `[${cri}]`,
      `  sandbox_image = ${tomlString(PAUSE_IMAGE)}`,
      '  stream_server_address = "127.0.0.1"',
      '  stream_server_port = "0"',
      // No CAP_SYS_RESOURCE here: CRI must not ask for an oom_score_adj below containerd's own.
      '  restrict_oom_score_adj = true',
      `[${cri}.cni]`,
      `  conf_dir = ${tomlString(join(dir, 'cni'))}`,
      `  bin_dir = ${tomlString(join(dir, 'cni'))}`,
      `[${cri}.containerd]`,
      '  default_runtime_name = "runc"',
      '  snapshotter = "overlayfs"',
    );
    for (const [name, r] of Object.entries(runtimes)) {
      lines.push(`[${cri}.containerd.runtimes.${name}]`, `  runtime_type = ${tomlString(r.runtimeType)}`);
      if (r.runtimePath) lines.push(`  runtime_path = ${tomlString(r.runtimePath)}`);
      if (r.containerAnnotations?.length) {
        lines.push(`  container_annotations = [${r.containerAnnotations.map(tomlString).join(', ')}]`);
      }
      if (r.options?.length) lines.push(`[${cri}.containerd.runtimes.${name}.options]`, ...r.options);
    }
  }
  return lines.join('\n') + '\n';
}

/** The socket path containerd 1.6's shims listen on for (address, namespace, id or group). */
export function shimSocketPath(address: string, namespace: string, id: string): string {
  const hex = createHash('sha256')
    .update(join(address, namespace, id))
    .digest('hex');
  return join(SHIM_SOCKET_DIR, hex);
}

/** Pids of processes whose argv mentions `needle` (shims carry `-address <our socket>`). */
export function pidsMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(needle)) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export class Containerd {
  readonly root: string;
  readonly state: string;
  /** The environment containerd runs with (its shims inherit it). */
  env: NodeJS.ProcessEnv = {};
  /** The gRPC socket (`ctr -a`, CRI clients). */
  readonly address: string;
  readonly ttrpcAddress: string;
  readonly configPath: string;
  readonly logFile: string;
  /** (namespace, id) pairs the test ran, for the socket leak check (see `track`). */
  private readonly ids = new Set<string>();
  private child: ChildProcess | undefined;
  private exited: Promise<number | string> | undefined;

  private constructor(
    readonly dir: string,
    private readonly opts: ContainerdOptions,
  ) {
    this.root = join(dir, 'root');
    this.state = join(dir, 'state');
    this.address = join(dir, 'c.sock');
    this.ttrpcAddress = join(dir, 'c.sock.ttrpc');
    this.configPath = join(dir, 'config.toml');
    this.logFile = join(dir, 'containerd.log');
  }

  /** Writes the config, starts containerd and waits (20 s at most) until it answers `ctr version`. */
  static async start(opts: ContainerdOptions = {}): Promise<Containerd> {
    // Short: containerd's socket paths (and the shims' ttrpc ones) must stay under 108 bytes.
    const c = new Containerd(mkdtempSync(join(tmpdir(), 'ctd-')), opts);
    try {
      mkdirSync(join(c.dir, 'cni'));
      if (opts.strata) {
        mkdirSync(join(c.dir, 'bin'));
        symlinkSync(strataShimExecutable(), join(c.dir, 'bin', 'containerd-shim-strata-v2'));
      }
      writeFileSync(c.configPath, configToml(c.dir, opts));
      await c.launch();
    } catch (err) {
      await c.cleanup();
      throw err;
    }
    return c;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private async launch(): Promise<void> {
    const path = [
      ...(this.opts.strata ? [join(this.dir, 'bin')] : []),
      ...(this.opts.shimPath ?? []),
      process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    ];
    this.env = {
      ...process.env,
      ...(this.opts.strata ? strataEnv(this.opts.strata) : {}),
      ...this.opts.env,
      PATH: path.join(':'),
    };
    const child = spawn('containerd', ['--config', this.configPath, '--log-level', 'info'], {
      env: this.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    const log: Buffer[] = [];
    child.stderr?.on('data', (d: Buffer) => {
      log.push(d);
      writeFileSync(this.logFile, d, { flag: 'a' });
    });
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, sig) => resolve(code ?? sig ?? 'unknown')),
    );
    const ready = await eventually(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return true;
      return existsSync(this.address) && (await this.ctr(['version'])).code === 0;
    }, 20_000);
    if (!ready || child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`containerd did not start:\n${Buffer.concat(log).toString().slice(-4000)}`);
    }
  }

  /** containerd's own log so far. */
  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  /** `ctr -a ADDRESS -n NAMESPACE ARGS…` to its end (stdin /dev/null unless `input`). */
  ctr(
    args: string[],
    opts: { namespace?: string; input?: string; timeoutMs?: number } = {},
  ): Promise<RunResult> {
    const argv = ['-a', this.address, '-n', opts.namespace ?? 'default', ...args];
    const run = runCollect('ctr', argv, { input: opts.input });
    if (!opts.timeoutMs) return run;
    const ms = opts.timeoutMs;
    return Promise.race([
      run,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`ctr ${args.join(' ')} took more than ${ms} ms`)), ms).unref(),
      ),
    ]);
  }

  /** `ctr` that must succeed; returns its stdout. */
  async ctrOk(args: string[], opts: { namespace?: string; input?: string } = {}): Promise<string> {
    const r = await this.ctr(args, opts);
    if (r.code !== 0) throw new Error(`ctr ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
    return r.stdout;
  }

  /** `ctr images import --base-name NAME ARCHIVE` of an oci-archive tagged `latest`. */
  async importArchive(
    archive: string,
    name: string,
    namespace = 'default',
    opts: { unpack?: boolean } = {},
  ): Promise<void> {
    const base = name.replace(/:[^/:]+$/, '');
    const unpack = opts.unpack === false ? ['--no-unpack'] : [];
    await this.ctrOk(['images', 'import', ...unpack, '--base-name', base, archive], { namespace });
  }

  /** Imports the test fixtures (busybox always; debian on request) as CONTAINERD_IMAGES names,
   * and, in `k8s.io`, the pause image when CRI is on. */
  async importTestImages(
    images: ('busybox' | 'debian')[] = ['busybox'],
    namespaces: string[] = ['default'],
  ): Promise<void> {
    for (const ns of namespaces) {
      for (const name of images) {
        const img = name === 'busybox' ? await busyboxImage() : await debianImage();
        await this.importArchive(img.ociArchive, CONTAINERD_IMAGES[name], ns);
      }
    }
    if (this.opts.cri !== false) await this.importPauseImage();
  }

  /** The catatonit pause image into `k8s.io`, under PAUSE_IMAGE (the config's sandbox_image). */
  async importPauseImage(): Promise<void> {
    await this.importArchive(await pauseImageArchive(), PAUSE_IMAGE, K8S_NAMESPACE);
  }

  /** Notes a container id (or shim group id) whose shim socket close() must find gone. */
  track(namespace: string, id: string): void {
    this.ids.add(`${namespace}\0${id}`);
  }

  /** The shim sockets of tracked ids that still exist. */
  shimSocketsLeft(): string[] {
    return [...this.ids]
      .map((k) => {
        const [ns, id] = k.split('\0');
        return shimSocketPath(this.address, ns, id);
      })
      .filter((p) => existsSync(p));
  }

  /** Every task containerd knows, per namespace: `{namespace, id, pid}`. */
  async tasks(): Promise<{ namespace: string; id: string; pid: number }[]> {
    const out: { namespace: string; id: string; pid: number }[] = [];
    for (const ns of (await this.ctrOk(['namespaces', 'ls', '-q'])).split('\n').filter(Boolean)) {
      const lines = (await this.ctrOk(['tasks', 'ls'], { namespace: ns })).split('\n').slice(1);
      for (const line of lines.filter(Boolean)) {
        const [id, pid] = line.trim().split(/\s+/);
        out.push({ namespace: ns, id, pid: Number(pid) });
      }
    }
    return out;
  }

  /** Containers containerd has records of, per namespace. */
  async containers(): Promise<{ namespace: string; id: string }[]> {
    const out: { namespace: string; id: string }[] = [];
    for (const ns of (await this.ctrOk(['namespaces', 'ls', '-q'])).split('\n').filter(Boolean)) {
      for (const id of (await this.ctrOk(['containers', 'ls', '-q'], { namespace: ns })).split('\n')) {
        if (id) out.push({ namespace: ns, id });
      }
    }
    return out;
  }

  /** SIGTERM containerd and wait for it (shims, by design, outlive it). */
  async stop(): Promise<number | string> {
    if (!this.child || !this.exited) return 'not running';
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const code = await this.exited;
    this.child = undefined;
    return code;
  }

  /** Starts containerd again on the same config, root and state (a containerd restart). */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** What this containerd left: live processes naming its dir, mounts under it, shim sockets. */
  leftovers(taskPids: number[] = []): { processes: number[]; mounts: string[]; sockets: string[] } {
    return {
      processes: [...new Set([...pidsMentioning(this.dir), ...taskPids.filter((p) => p > 0 && isAlive(p))])],
      mounts: mountsUnder(this.dir),
      sockets: this.shimSocketsLeft(),
    };
  }

  /**
   * Asserts that the test removed everything (no task, no container), stops containerd and
   * asserts nothing of it is left; then cleans up whatever was (killing only this containerd's
   * own pids) and removes the temp dir, whether or not the assertions held.
   */
  async close(): Promise<void> {
    let tasks: { namespace: string; id: string; pid: number }[] = [];
    let containers: { namespace: string; id: string }[] = [];
    try {
      if (this.child) {
        tasks = await this.tasks();
        containers = await this.containers();
        for (const t of tasks) this.track(t.namespace, t.id);
      }
      const code = await this.stop();
      assert.equal(tasks, [], 'no task left in containerd');
      assert.equal(containers, [], 'no container record left in containerd');
      assert.ok(code === 0 || code === 'not running', `containerd exits cleanly on SIGTERM (got ${code})`);
      const pids = tasks.map((t) => t.pid);
      // Shims exit a moment after their last task's delete.
      if (!(await eventually(() => this.leftovers(pids).processes.length === 0, 5000))) {
        assert.equal(this.leftovers(pids).processes, [], 'no shim or task process left');
      }
      assert.equal(this.leftovers(pids).mounts, [], 'nothing mounted under containerd root/state');
      assert.equal(this.shimSocketsLeft(), [], `no shim socket left in ${SHIM_SOCKET_DIR}`);
      assert.equal(this.bundlesLeft(), [], 'no task bundle left in containerd state');
    } finally {
      await this.cleanup(tasks.map((t) => t.pid));
    }
  }

  /** Task bundles (state/io.containerd.runtime.v2.task/NS/ID) left: a delete that failed. */
  bundlesLeft(): string[] {
    const tasks = join(this.state, 'io.containerd.runtime.v2.task');
    if (!existsSync(tasks)) return [];
    return readdirSync(tasks).flatMap((ns) => readdirSync(join(tasks, ns)).map((id) => `${ns}/${id}`));
  }

  /** Kills what is left of this containerd (by pid), unmounts under its dir, removes the dir. */
  private async cleanup(taskPids: number[] = []): Promise<void> {
    await this.stop().catch(() => undefined);
    for (const pid of [...taskPids.filter((p) => p > 0), ...pidsMentioning(this.dir)]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await eventually(() => pidsMentioning(this.dir).length === 0, 3000);
    await unmountAll(this.dir);
    for (const s of this.shimSocketsLeft()) rmSync(s, { force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Runs fn against a fresh containerd, closed (with the leak checks) afterwards. */
export async function withContainerd<T>(
  opts: ContainerdOptions,
  fn: (c: Containerd) => Promise<T>,
): Promise<T> {
  const c = await Containerd.start(opts);
  let result: T;
  try {
    result = await fn(c);
  } catch (err) {
    await c.close().catch(() => undefined);
    throw err;
  }
  await c.close();
  return result;
}
