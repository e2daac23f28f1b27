// The VM host: one process per VM (`strata vm serve`, started by the first `strata run --vm`).
// It starts the hypervisor through a VmBackend, holds the one agent stream (AgentSession), and
// serves clients on <stateDir>/host.sock with the same protocol (AgentServer): a client's EXEC
// names an image, which the host serves from the store as the process's FUSE root (src/mount's
// FuseProtocol, relayed over the stream; no copy of the image enters the VM). It stops the VM
// when no process ran for idleMs, when asked (SIGTERM), or when the agent goes away (the next
// `strata run --vm` starts a fresh one). docs/architecture.md#vm-guests.
import { spawn, type ChildProcess } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { machine } from 'node:os';
import { dirname, join } from 'node:path';
import type { Writable } from 'node:stream';

import { FilesystemBridge } from '../mount/fs/bridge.js';
import { placeholdersFor } from '../mount/mount-points.js';
import { prepareImage, type PreparedImage } from '../mount/serve.js';
import type { Mount } from '../schema/generated/runtime-config.js';
import { SECCOMP_BPF_ANNOTATION, SECCOMP_FAIL_UNKNOWN_ANNOTATION } from '../spec/annotations.js';
import { precompileSeccomp } from '../spec/seccomp-bpf.js';
import type { LinuxSeccomp } from '../spec/seccomp.js';
import { releaseStaleLeases } from '../store/leases.js';
import { AgentSession, FuseRelayStats, type TreeSource } from './agent-session.js';
import { AgentServer, type ServedProcess } from './agent-server.js';
import { guestContainerId } from './protocol.js';
import { checkGuestFiles, connectAgent, type VmBackend, type VmConfig } from './backend.js';
import {
  clearShares,
  shareMounts,
  sharesDir,
  startVirtiofsd,
  virtiofsdSocket,
  type SharedMounts,
} from './shares.js';

export interface VmHostOptions {
  config: VmConfig;
  backend: VmBackend;
  storeRoot: string;
  /** Stop the VM after this long without a process. Default 60 s ($STRATA_VM_IDLE_MS). */
  idleMs?: number;
  /** How long the guest has to say hello after the hypervisor starts. */
  helloTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface VmState {
  hostPid: number;
  hypervisorPid: number;
  backend: string;
  storeRoot: string;
  startedAt: string;
  bootMs: number;
}

export function hostSocket(stateDir: string): string {
  return join(stateDir, 'host.sock');
}

/** Where a detached container's output goes (`strata vm logs ID`). */
export function containerLog(stateDir: string, id: string): string {
  return join(stateDir, 'logs', `${id}.log`);
}

export function stateFile(stateDir: string): string {
  return join(stateDir, 'state.json');
}

export function readVmState(stateDir: string): VmState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(stateDir), 'utf8')) as VmState;
  } catch {
    return undefined;
  }
}

/** A process that exists and is not a zombie (a killed host may linger unreaped for a moment). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return process.platform !== 'linux';
  }
}

/** The mounts of a client's config.json (only their destinations matter here; crun checks the rest). */
function configMounts(config: string | undefined): Mount[] {
  if (config === undefined) return [];
  try {
    const mounts = (JSON.parse(config) as { mounts?: unknown }).mounts;
    return Array.isArray(mounts)
      ? mounts.filter((m): m is Mount => typeof (m as Mount | null)?.destination === 'string')
      : [];
  } catch {
    return [];
  }
}

function isDirectory(path: string): boolean | undefined {
  try {
    return statSync(path).isDirectory();
  } catch {
    return undefined;
  }
}

/** What the VM host reads and changes of a client's config.json. */
interface VmRuntimeConfig {
  mounts?: Mount[];
  annotations?: Record<string, string>;
  linux?: { seccomp?: LinuxSeccomp };
}

const U32 = 0x100000000;

/** The image's tree for the agent to answer the root's metadata itself (the guest-side cache):
 * what the host's native fast path answers from. Undefined (every request relayed) without an
 * index, with timeouts the C side cannot carry, or with $STRATA_VM_TREE=0. */
export function treeSource(prepared: PreparedImage): TreeSource | undefined {
  if (process.env.STRATA_VM_TREE === '0') return undefined;
  const fs = prepared.handler.fs;
  const src = fs instanceof FilesystemBridge ? fs.fastPathSource() : undefined;
  if (!src) return undefined;
  const whole = (v: number) => Number.isInteger(v) && v >= 0 && v < U32;
  if (!whole(src.entryTimeout) || !whole(src.attrTimeout)) return undefined;
  const { buffer, ...geometry } = src.nodes.index.encoded;
  return {
    key: prepared.image.indexDigest,
    index: buffer,
    answers: {
      entryTimeout: src.entryTimeout,
      attrTimeout: src.attrTimeout,
      xattrEnosys: geometry.xattrCount === 0,
      geometry,
      deferred: [...src.nodes.deferred],
    },
  };
}

/** A hypervisor left by a host that was killed: ours if its command line names our state dir. */
export function killStaleHypervisor(stateDir: string): void {
  const pidFile = join(stateDir, 'hypervisor.pid');
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (pid > 0 && cmdline.includes(stateDir)) process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/** The sockets, pid file and state of a VM that is not running. */
export function removeRuntimeFiles(stateDir: string): void {
  for (const f of ['host.sock', 'agent.sock', 'hypervisor.pid', 'state.json', 'rest.sock', 'virtiofs.sock']) {
    rmSync(join(stateDir, f), { force: true });
  }
}

export class VmHost {
  private readonly opts: VmHostOptions;
  private hypervisor?: ChildProcess;
  private virtiofsd?: ChildProcess;
  /** The config the VM was started with (opts.config plus its shares). */
  private config: VmConfig;
  private agent?: AgentSession;
  private server?: Server;
  private readonly clients = new Set<AgentServer>();
  private running = 0;
  private idleTimer?: NodeJS.Timeout;
  private stopping?: Promise<void>;
  private readonly log: (line: string) => void;
  /** Resolves when the host has stopped (VM down, sockets gone). */
  readonly stopped: Promise<void>;
  private resolveStopped!: () => void;

  /** What this VM's leases say they are held by (and a later host looks for). */
  private get leaseHolder(): string {
    return `vm ${this.opts.config.stateDir}`;
  }

  constructor(opts: VmHostOptions) {
    this.opts = opts;
    this.config = opts.config;
    this.log = opts.log ?? ((l) => process.stderr.write(`strata vm: ${l}\n`));
    this.stopped = new Promise((r) => (this.resolveStopped = r));
  }

  /** Boots the VM, waits for the agent's hello, then listens for clients. */
  async start(): Promise<void> {
    const { backend } = this.opts;
    const dir = this.opts.config.stateDir;
    checkGuestFiles(this.opts.config);
    backend.executable();
    killStaleHypervisor(dir);
    await clearShares(dir);
    // Leases of an earlier host of this VM that was killed (its pid is gone).
    await releaseStaleLeases(this.opts.storeRoot, (l) => JSON.stringify(l).includes(this.leaseHolder), {
      timeoutMs: 10_000,
    }).catch((err: unknown) => this.log(`releasing stale leases: ${(err as Error).message}`));
    removeRuntimeFiles(dir);
    await this.startShares();
    const config = this.config;
    const argv = backend.argv(config);
    const t0 = Date.now();
    const log = openSync(join(dir, 'hypervisor.log'), 'w');
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', log, log] });
    this.hypervisor = child;
    let exited = false;
    child.on('exit', (code, signal) => {
      exited = true;
      if (!this.stopping)
        this.log(`the hypervisor exited (${signal ?? code}); see ${join(dir, 'hypervisor.log')}`);
      void this.stop();
    });
    child.on('error', (err) => this.log(`the hypervisor failed: ${err.message}`));
    try {
      const helloMs = this.opts.helloTimeoutMs ?? 60_000;
      const { agent, hello } = await connectAgent(backend.agentSocket(config), {
        helloMs,
        exited: () => exited,
        stopping: () => this.stopping !== undefined,
        session: (a) => (this.agent = a),
      });
      agent.onClose((err) => {
        if (!this.stopping) this.log(`the agent connection ended: ${err.message}`);
        void this.stop();
      });
      const bootMs = Date.now() - t0;
      this.log(`agent ready after ${bootMs} ms (${hello.info})`);
      await this.listen();
      const state: VmState = {
        hostPid: process.pid,
        hypervisorPid: child.pid ?? 0,
        backend: backend.name,
        storeRoot: this.opts.storeRoot,
        startedAt: new Date().toISOString(),
        bootMs,
      };
      writeFileSync(stateFile(dir), JSON.stringify(state) + '\n');
      this.armIdle();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** The virtio-fs share of -v sources: virtiofsd for qemu when installed, vfkit's own otherwise;
   * without one, -v is refused with what to install. */
  private async startShares(): Promise<void> {
    const { backend, config } = this.opts;
    const dir = sharesDir(config.stateDir);
    if (backend.sharing === 'native') {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      this.config = { ...config, shares: { dir, socket: '' } };
      return;
    }
    const binary = backend.virtiofsd?.();
    if (!binary) return;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      this.virtiofsd = await startVirtiofsd(binary, config.stateDir);
      this.config = { ...config, shares: { dir, socket: virtiofsdSocket(config.stateDir) } };
    } catch (err) {
      this.log(`no -v for this VM: ${(err as Error).message}`);
    }
  }

  private listen(): Promise<void> {
    const path = hostSocket(this.opts.config.stateDir);
    return new Promise((resolve, reject) => {
      const server = createServer((sock) => this.accept(sock));
      server.once('error', reject);
      server.listen(path, () => {
        this.server = server;
        resolve();
      });
    });
  }

  private accept(sock: Socket): void {
    const client = new AgentServer(sock, {
      info: `vm-host pid=${process.pid}`,
      onExec: (proc) => void this.run(proc),
      onClose: (running) => {
        this.clients.delete(client);
        for (const p of running) p.onSignal?.(9);
      },
    });
    this.clients.add(client);
  }

  private async run(proc: ServedProcess): Promise<void> {
    const agent = this.agent;
    if (!agent || !agent.isOpen || this.stopping) {
      proc.error('the VM is stopping');
      return;
    }
    if (!proc.spec.image && proc.spec.rootPath === undefined) {
      proc.error('no image to run');
      return;
    }
    this.running += 1;
    this.disarmIdle();
    let release: (() => Promise<void>) | undefined;
    let shared: SharedMounts | undefined;
    try {
      if (!proc.spec.image) {
        // The guest's own tools (rootPath, no image): `strata vm exec`, and tests looking for leftovers.
        const p = agent.exec(
          { ...proc.spec, fuseRoot: false, config: undefined },
          { stdin: proc.stdin, stdout: proc.stdout, stderr: proc.stderr },
        );
        proc.onSignal = (signo) => p.signal(signo);
        p.pid.then(
          (pid) => proc.started(pid),
          () => undefined,
        );
        proc.exit(await p.exited);
        return;
      }
      const prepared = await prepareImage({
        storeRoot: this.opts.storeRoot,
        ref: proc.spec.image,
        passthrough: false,
        // crun's mounts need their targets in the image: the FUSE tree adds what it lacks.
        placeholders: placeholdersFor(configMounts(proc.spec.config), isDirectory),
        lease: { kind: 'mount', reader: `${this.leaseHolder} pid ${process.pid}` },
      });
      release = prepared.release;
      const { image: _image, ...spec } = proc.spec;
      if (spec.config !== undefined) {
        const config = JSON.parse(spec.config) as VmRuntimeConfig;
        shared = shareMounts(this.config.stateDir, config.mounts ?? [], this.config.shares !== undefined);
        if (shared.count > 0) config.mounts = shared.mounts;
        this.precompileSeccomp(config);
        spec.config = JSON.stringify(config);
      }
      const fuseStats = process.env.STRATA_VM_FUSE_STATS ? new FuseRelayStats() : undefined;
      const { detach, ...guestSpec } = spec;
      // -d: the output goes to the container's log, and the client only hears its id.
      const detached = detach ? this.detachedOutput(agent.session, agent.nextProcessId) : undefined;
      const p = agent.exec(
        { ...guestSpec, fuseRoot: true },
        {
          stdin: detached ? null : proc.stdin,
          stdout: detached?.log ?? proc.stdout,
          stderr: detached?.log ?? proc.stderr,
          fuse: prepared.handler,
          fuseStats,
          tree: treeSource(prepared),
        },
      );
      if (detached) {
        const pid = await p.pid;
        proc.stdout.write(`${detached.id}\n`);
        proc.started(pid);
        proc.exit({ code: 0 });
        const status = await p.exited.finally(() => detached.log.end());
        this.log(`detached container ${detached.id} exited ${status.code}`);
        return;
      }
      proc.onSignal = (signo) => p.signal(signo);
      proc.onResize = (size) => p.resize(size);
      p.pid.then(
        (pid) => proc.started(pid),
        () => undefined,
      );
      const status = await p.exited;
      if (fuseStats) this.log(`process ${proc.id}: ${fuseStats.summary()}`);
      proc.exit(status);
    } catch (err) {
      proc.error(err instanceof Error ? err.message : String(err));
    } finally {
      await shared?.release();
      await release?.().catch(() => undefined);
      this.running -= 1;
      this.armIdle();
    }
  }

  /** crun in the guest takes the filter compiled here, as a host bundle does (src/spec/bundle.ts):
   * under TCG libseccomp's compile of podman's profile is a large part of a start. Only when the
   * guest's architecture is ours (its crun links the same libseccomp: the image script copies
   * this machine's), so the bytes are those crun would build there. */
  private precompileSeccomp(config: VmRuntimeConfig): void {
    const seccomp = config.linux?.seccomp;
    const annotations = config.annotations ?? {};
    const guestArch = /\barch=(\S+)/.exec(this.agent?.hello?.info ?? '')?.[1];
    if (!seccomp || guestArch !== machine() || process.env.STRATA_VM_SECCOMP_PRECOMPILE === '0') return;
    if (annotations[SECCOMP_FAIL_UNKNOWN_ANNOTATION] !== undefined || annotations[SECCOMP_BPF_ANNOTATION])
      return;
    try {
      const bpf = precompileSeccomp(seccomp, this.opts.storeRoot);
      if (bpf !== undefined) config.annotations = { ...annotations, [SECCOMP_BPF_ANNOTATION]: bpf };
    } catch (err) {
      this.log(`seccomp filter not precompiled: ${(err as Error).message}`);
    }
  }

  /** A detached container's id (the guest's crun id) and its log, opened for appending. */
  private detachedOutput(session: number, procId: number): { id: string; log: Writable } {
    const id = guestContainerId(session, procId);
    const path = containerLog(this.opts.config.stateDir, id);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    return { id, log: createWriteStream(path, { flags: 'a', mode: 0o600 }) };
  }

  private armIdle(): void {
    if (this.running > 0 || this.stopping) return;
    const ms = this.opts.idleMs ?? Number(process.env.STRATA_VM_IDLE_MS ?? 60_000);
    this.disarmIdle();
    this.idleTimer = setTimeout(() => {
      this.log(`idle for ${ms} ms: stopping`);
      void this.stop();
    }, ms);
  }

  private disarmIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** Powers the guest off (the agent's SIGNAL on the control channel), kills the hypervisor if it
   * lingers, and removes every socket and state file; idempotent. */
  stop(): Promise<void> {
    return (this.stopping ??= this.doStop());
  }

  private async doStop(): Promise<void> {
    this.disarmIdle();
    const dir = this.opts.config.stateDir;
    this.server?.close();
    for (const c of this.clients) c.close();
    const child = this.hypervisor;
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      // The guest powers itself off; the hypervisor is asked too where it has a way (vfkit's
      // REST stop), and signalled when it has none.
      if (this.agent?.isOpen && this.agent.hello) this.agent.powerOff();
      if (this.opts.backend.requestStop) {
        await this.opts.backend.requestStop(this.opts.config).catch(() => child.kill('SIGTERM'));
      } else if (!this.agent?.hello) {
        child.kill('SIGTERM');
      }
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(t);
    }
    this.agent?.close();
    const vfs = this.virtiofsd;
    if (vfs && vfs.exitCode === null && vfs.signalCode === null) {
      const gone = new Promise((r) => vfs.once('exit', r));
      vfs.kill('SIGTERM');
      const t = setTimeout(() => vfs.kill('SIGKILL'), 2000);
      await gone;
      clearTimeout(t);
    }
    await clearShares(dir);
    removeRuntimeFiles(dir);
    this.resolveStopped();
  }
}

/** True when a VM host answers on its socket (state.json names a live host). */
export function hostRunning(stateDir: string): boolean {
  const st = readVmState(stateDir);
  return st !== undefined && pidAlive(st.hostPid) && existsSync(hostSocket(stateDir));
}
