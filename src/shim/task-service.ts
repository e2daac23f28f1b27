// containerd's Task service (runtime v2, containerd.task.v2.Task), served by the strata daemon for
// every task over ttrpc: one server, not one shim process per container. The native
// containerd-shim-strata-v2 (native/shim/) only makes sure the daemon runs and registers the
// task's bundle and events address (strata.shim.v1.Shim/Register); its `delete` asks Cleanup.
//
// Tasks are keyed by containerd namespace (ttrpc metadata "containerd-namespace-ttrpc") and id,
// and run with runc, one state root per namespace. The root: when config.json names an image
// strata holds (org.strata.image, or CRI's io.kubernetes.cri.image-name), the daemon serves it and
// the createContainer hook attaches it inside the container, as for `strata run`; otherwise the
// rootfs mounts containerd passed (its snapshot) are mounted on <bundle>/rootfs, with a log line.
// Exits come from the reaper (subreaper + pidfd); TaskExit is published only after TaskStart and
// after the process's output is drained. docs/architecture.md#containerd-shim has the whole story.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { isAbsolute, join } from 'node:path';
import { statfsSync } from 'node:fs';
import { timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';

import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  StrataError,
} from '../errors.js';
import { constants, native } from '../native-addon.js';
import { hookExecutable } from '../executables.js';
import { IMAGE_ANNOTATION } from '../spec/annotations.js';
import { loadBundleConfig } from '../spec/bundle-config.js';
import { checkContainerId } from '../spec/container-id.js';
import { injectStrataHooks } from '../spec/hook-injection.js';
import { writeFileAtomicSync } from '../store/atomic.js';
import { resolveImageRecord } from '../store/records.js';
import { findExecutable, CGROUP2_SUPER_MAGIC } from '../run/runtime.js';
import type { RuntimeConfig } from '../schema/generated/runtime-config.js';
import {
  TaskCreateSchema,
  TaskDeleteSchema,
  TaskExecAddedSchema,
  TaskExecStartedSchema,
  TaskExitSchema,
  TaskPausedSchema,
  TaskResumedSchema,
  TaskStartSchema,
} from '../proto/generated/github.com/containerd/containerd/api/events/task_pb.js';
import { Status } from '../proto/generated/github.com/containerd/containerd/api/types/task/task_pb.js';
import type { Mount } from '../proto/generated/github.com/containerd/containerd/api/types/mount_pb.js';
import {
  Task as TaskServiceDesc,
  type DeleteResponse,
} from '../proto/generated/github.com/containerd/containerd/runtime/v2/task/shim_pb.js';
import { Shim as ShimServiceDesc } from '../proto/generated/strata-shim_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { DeleteResponseSchema } from '../proto/generated/github.com/containerd/containerd/runtime/v2/task/shim_pb.js';
import { addService, type CallContext, type Handler } from '../ttrpc/server.js';
import { Code, TtrpcError } from '../ttrpc/status.js';
import { unimplemented } from './errors.js';
import { ContainerdImages } from './containerd-images.js';
import { EventPublisher, TOPICS } from './events.js';
import { Reaper, type Exit } from './reaper.js';
import { Runc, spawnCollect } from './runc.js';
import { v1Metrics, v2Metrics } from './stats.js';
import { clearMountPoints } from './root-dir.js';
import { ProcessIO } from './stdio.js';

export const NAMESPACE_METADATA = 'containerd-namespace-ttrpc';
/** What `delete` reports for a task nobody knows the end of: killed (runc's shim does the same). */
export const UNKNOWN_EXIT_STATUS = 128 + 9;
/** The annotation CRI sets to the container's image. */
export const CRI_IMAGE_ANNOTATION = 'io.kubernetes.cri.image-name';

export type LogFn = (level: 'info' | 'warn' | 'error', message: string) => void;

/** The daemon's container roots (src/daemon/containers.ts), for tasks whose image strata serves. */
export interface RootProvider {
  prepareAhead(id: string, bundle: string, config: RuntimeConfig): Promise<void>;
  containerEnded(id: string, why: string): Promise<void>;
}

export interface TaskServiceOptions {
  storeRoot: string;
  /** The daemon socket: the hooks' and the shim's address. */
  socketPath: string;
  /** runc state roots, console sockets, exec specs. */
  stateDir: string;
  roots?: RootProvider;
  log: LogFn;
  runcBinary?: string;
  /** Import a task's image from containerd's content store when strata lacks it (default: on
   * unless $STRATA_CONTAINERD_IMPORT is 0; off, such tasks run on containerd's rootfs mounts). */
  containerdImport?: boolean;
}

type ProcState = 'created' | 'running' | 'paused' | 'stopped';

interface Proc {
  execId: string;
  pid: number;
  state: ProcState;
  io: ProcessIO;
  exit?: Exit;
  /** Resolves once the exit is known and the output drained. */
  exited: Promise<Exit>;
  setExited: (e: Exit) => void;
  /** Resolves once TaskStart / TaskExecStarted went out (TaskExit waits for it). */
  started: Promise<void>;
  setStarted: () => void;
  /** An exec's process spec (runtime-spec Process JSON). */
  spec?: string;
  /** Start was called: `started` resolves when it is over (published or failed). */
  starting?: boolean;
}

interface Registration {
  ttrpcAddress?: string;
  /** containerd's gRPC socket (the shim's -address): where the task's image is asked for. */
  containerdAddress?: string;
  bundle?: string;
}

interface Task {
  ns: string;
  id: string;
  bundle: string;
  runc: Runc;
  init: Proc;
  execs: Map<string, Proc>;
  /** Mount points of containerd's rootfs mounts we made (unmounted on delete). */
  mounted: string[];
  /** The daemon serves this task's root. */
  strataRoot: boolean;
  /** config.json's root.path under the bundle (runc's mount points are cleared there). */
  rootDir: string;
  deleting?: Promise<MessageInitShape<typeof DeleteResponseSchema>>;
  /** runc's state and containerd's rootfs mount going, once the init exited (afterInitExit). */
  afterExit?: Promise<void>;
}

function newProc(execId: string, io: ProcessIO, spec?: string): Proc {
  let setExited!: (e: Exit) => void;
  let setStarted!: () => void;
  const exited = new Promise<Exit>((r) => (setExited = r));
  const started = new Promise<void>((r) => (setStarted = r));
  return { execId, pid: 0, state: 'created', io, exited, setExited, started, setStarted, spec };
}

function ts(d: Date | undefined): Timestamp | undefined {
  return d ? timestampFromDate(d) : undefined;
}

const STATUS: Record<ProcState, Status> = {
  created: Status.CREATED,
  running: Status.RUNNING,
  paused: Status.PAUSED,
  stopped: Status.STOPPED,
};

function namespaceOf(ctx: CallContext): string {
  const ns = ctx.metadata.get(NAMESPACE_METADATA)?.[0] ?? 'default';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,75}$/.test(ns)) {
    throw new InvalidArgumentError(`containerd namespace ${JSON.stringify(ns)} is not valid`);
  }
  return ns;
}

function socketFd(socket: Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

function isCgroup2Host(): boolean {
  try {
    return statfsSync('/sys/fs/cgroup').type === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/** A unix socket runc sends a terminal's master to (--console-socket). */
class ConsoleSocket {
  private readonly conns: Socket[] = [];
  private waiter?: () => void;
  private constructor(
    readonly path: string,
    private readonly server: Server,
  ) {
    server.on('connection', (s: Socket) => {
      this.conns.push(s);
      this.waiter?.();
    });
  }

  static async open(dir: string): Promise<ConsoleSocket> {
    const path = join(dir, `console-${randomBytes(6).toString('hex')}.sock`);
    const server = createServer({ pauseOnConnect: true });
    const c = new ConsoleSocket(path, server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    return c;
  }

  /** The master fd runc sent (runc has exited by now, so it is in the socket's buffer). */
  async receive(timeoutMs = 5000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.conns.length === 0) {
      if (Date.now() > deadline)
        throw new FailedPreconditionError('runc sent no terminal on the console socket');
      await new Promise<void>((r) => {
        this.waiter = r;
        setTimeout(r, 50);
      });
    }
    const s = this.conns[0];
    for (;;) {
      try {
        const { fds } = native.recvFds(socketFd(s), 4096, 1);
        if (fds.length === 1) return fds[0];
        throw new FailedPreconditionError('runc closed the console socket without sending a terminal');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if ((code !== 'EAGAIN' && code !== 'EWOULDBLOCK') || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }

  close(): void {
    for (const s of this.conns) s.destroy();
    this.server.close();
    rmSync(this.path, { force: true });
  }
}

export class TaskService {
  private readonly tasks = new Map<string, Task>();
  private readonly creating = new Set<string>();
  private readonly registrations = new Map<string, Registration>();
  /** How recently deleted tasks ended, for `delete` (idempotent, with the real status). */
  private readonly finished = new Map<string, MessageInitShape<typeof DeleteResponseSchema>>();
  private readonly reaper = new Reaper();
  private readonly events: EventPublisher;
  private readonly runcBinary: string;
  private readonly images: ContainerdImages;

  constructor(private readonly opts: TaskServiceOptions) {
    this.images = new ContainerdImages({
      storeRoot: opts.storeRoot,
      log: (message) => opts.log('info', message),
    });
    this.events = new EventPublisher({ log: opts.log });
    this.runcBinary = opts.runcBinary ?? findExecutable('runc') ?? 'runc';
  }

  get size(): number {
    return this.tasks.size;
  }

  /** ttrpc handlers of containerd.task.v2.Task and strata.shim.v1.Shim. */
  handlers(): Map<string, Handler> {
    const m = new Map<string, Handler>();
    addService(m, TaskServiceDesc, {
      create: (r, c) => this.create(r, c),
      start: (r, c) => this.start(r.id, r.execId, c),
      delete: (r, c) => this.delete(r.id, r.execId, c),
      state: async (r, c) => this.state(r.id, r.execId, c),
      pids: (r, c) => this.pids(r.id, c),
      pause: (r, c) => this.pause(r.id, c, true),
      resume: (r, c) => this.pause(r.id, c, false),
      checkpoint: async () => {
        throw unimplemented('strata does not checkpoint containers (no CRIU support)');
      },
      kill: (r, c) => this.kill(r.id, r.execId, r.signal, r.all, c),
      exec: (r, c) => this.exec(r, c),
      resizePty: async (r, c) => {
        this.proc(this.task(r.id, c), r.execId).io.resize(r.width, r.height);
        return {};
      },
      closeIO: async (r, c) => {
        if (r.stdin) this.proc(this.task(r.id, c), r.execId).io.closeStdin();
        return {};
      },
      update: (r, c) => this.update(r.id, r.resources?.value, c),
      wait: (r, c) => this.wait(r.id, r.execId, c),
      stats: (r, c) => this.stats(r.id, c),
      connect: async (r, c) => {
        const t = this.task(r.id, c);
        return { shimPid: process.pid, taskPid: t.init.pid, version: 'strata' };
      },
      shutdown: async () => ({}), // one daemon serves every task: it stays
    });
    addService(m, ShimServiceDesc, {
      register: async (r) => {
        checkContainerId(r.id, 'task id');
        this.registrations.set(`${r.namespace}/${r.id}`, {
          ttrpcAddress: r.ttrpcAddress || undefined,
          containerdAddress: r.containerdAddress || undefined,
          bundle: r.bundle,
        });
        return {};
      },
      cleanup: (r) => this.cleanup(r.namespace, r.id, r.bundle),
    });
    return m;
  }

  private task(id: string, ctx: CallContext): Task {
    const key = `${namespaceOf(ctx)}/${id}`;
    const t = this.tasks.get(key);
    if (!t) throw new NotFoundError(`task ${id}: not found`);
    return t;
  }

  private proc(t: Task, execId: string): Proc {
    if (!execId) return t.init;
    const p = t.execs.get(execId);
    if (!p) throw new NotFoundError(`process ${execId} of task ${t.id}: not found`);
    return p;
  }

  private publish<S extends Parameters<EventPublisher['publish']>[3]>(
    t: { ns: string; id: string },
    topic: string,
    schema: S,
    event: MessageInitShape<S>,
  ): Promise<void> {
    const address = this.registrations.get(`${t.ns}/${t.id}`)?.ttrpcAddress;
    return this.events.publish(address, t.ns, topic, schema, event);
  }

  private runcFor(ns: string): Runc {
    const root = join(this.opts.stateDir, ns, 'runc');
    mkdirSync(root, { recursive: true, mode: 0o700 });
    return new Runc({ binary: this.runcBinary, root, reaper: this.reaper });
  }

  private workDir(ns: string, id: string): string {
    const dir = join(this.opts.stateDir, ns, 'tasks', id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  // ---- Create ----

  private async create(
    req: MessageInitShape<typeof TaskServiceDesc.method.create.input> & {
      id: string;
      bundle: string;
      rootfs: Mount[];
      terminal: boolean;
      stdin: string;
      stdout: string;
      stderr: string;
      checkpoint: string;
    },
    ctx: CallContext,
  ): Promise<{ pid: number }> {
    const ns = namespaceOf(ctx);
    const id = checkContainerId(req.id, 'task id');
    const key = `${ns}/${id}`;
    if (this.tasks.has(key) || this.creating.has(key))
      throw new AlreadyExistsError(`task ${id}: already exists`);
    if (req.checkpoint) throw unimplemented('strata cannot restore a task from a checkpoint');
    if (!isAbsolute(req.bundle))
      throw new InvalidArgumentError(`bundle ${JSON.stringify(req.bundle)} is not an absolute path`);
    this.creating.add(key);
    // Before runc create: its child is reparented to the subreaper when runc exits, so the daemon
    // must already be one then.
    this.reaper.install();
    const undo: (() => Promise<void> | void)[] = [];
    try {
      const config = loadBundleConfig(req.bundle);
      const root = await this.prepareRoot(ns, id, req.bundle, config, req.rootfs);
      undo.push(async () => {
        await root.prepared?.catch(() => undefined); // a root still being prepared is not yet released
        await this.releaseRoot({ ns, id, ...root }, 'its create failed');
      });
      const io = new ProcessIO(
        { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
        { id, namespace: ns },
      );
      undo.push(() => io.close());
      await io.ready;
      const runc = this.runcFor(ns);
      const consoleSocket = req.terminal ? await ConsoleSocket.open(this.workDir(ns, id)) : undefined;
      const pidFile = join(this.workDir(ns, id), 'init.pid');
      try {
        try {
          await runc.create(id, req.bundle, pidFile, io.child, consoleSocket?.path);
        } catch (err) {
          await root.prepared; // its failure (the hook's) says more than runc's
          throw err;
        }
        await root.prepared;
        undo.push(() => runc.delete(id, true).catch(() => undefined));
        if (consoleSocket) io.attachConsole(await consoleSocket.receive());
      } finally {
        io.closeChildEnds();
        consoleSocket?.close();
      }
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 1)
        throw new FailedPreconditionError(`runc wrote no usable pid for task ${id}`);
      const init = newProc('', io);
      init.pid = pid;
      const task: Task = {
        ns,
        id,
        bundle: req.bundle,
        runc,
        init,
        execs: new Map(),
        mounted: root.mounted,
        strataRoot: root.strataRoot,
        rootDir: root.rootDir,
      };
      this.reaper.watch(pid, (e) => void this.onExit(task, init, e));
      this.tasks.set(key, task);
      void this.publish(task, TOPICS.create, TaskCreateSchema, {
        containerId: id,
        bundle: req.bundle,
        rootfs: req.rootfs,
        io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
        pid,
      });
      this.opts.log(
        'info',
        `task ${key}: created (pid ${pid}, root ${root.strataRoot ? 'served by strata' : 'containerd rootfs mounts'})`,
      );
      return { pid };
    } catch (err) {
      for (const u of undo.reverse()) await u();
      throw err;
    } finally {
      this.creating.delete(key);
    }
  }

  /** The task's root: served by strata when it holds the image, else containerd's mounts. */
  private async prepareRoot(
    ns: string,
    id: string,
    bundle: string,
    config: RuntimeConfig,
    rootfs: Mount[],
  ): Promise<{ mounted: string[]; strataRoot: boolean; rootDir: string; prepared?: Promise<void> }> {
    const explicit = config.annotations?.[IMAGE_ANNOTATION];
    const rootDir = join(bundle, config.root?.path ?? 'rootfs');
    let digest: string | undefined;
    let why: string | undefined;
    if (this.opts.roots) {
      // Asked for by name (org.strata.image): its absence is the answer. Otherwise the image
      // containerd made the container from, imported from its content store when strata lacks it.
      if (explicit) digest = (await resolveImageRecord(this.opts.storeRoot, explicit)).manifestDigest;
      else ({ digest, why } = await this.containerdImage(ns, id, config));
    }
    if (digest && this.opts.roots) {
      const rewritten = injectStrataHooks(
        { ...config, annotations: { ...config.annotations, [IMAGE_ANNOTATION]: digest } },
        { hookPath: hookExecutable(), socketPath: this.opts.socketPath },
        ['createContainer'],
      );
      // Not durable: a bundle does not outlive a reboot (containerd's state dir is /run).
      writeFileAtomicSync(join(bundle, 'config.json'), JSON.stringify(rewritten), { durable: false });
      mkdirSync(rootDir, { recursive: true });
      // Prepared while runc creates the container: its createContainer hook waits for it.
      const prepared = this.opts.roots.prepareAhead(id, bundle, rewritten);
      prepared.catch(() => undefined); // awaited by create
      return { mounted: [], strataRoot: true, rootDir, prepared };
    }
    const target = rootDir;
    if (rootfs.length === 0) {
      if (why) throw new FailedPreconditionError(`task ${id}: ${why}, and containerd passed no rootfs`);
      return { mounted: [], strataRoot: false, rootDir };
    }
    this.opts.log(
      'info',
      `task ${ns}/${id}: ${why ?? 'strata serves no image for it'}; mounting containerd's rootfs (${rootfs.map((m) => m.type).join(', ')})`,
    );
    mkdirSync(target, { recursive: true });
    const mounted: string[] = [];
    try {
      for (const m of rootfs) {
        if (!/^[a-z0-9._-]+$/.test(m.type))
          throw new InvalidArgumentError(`rootfs mount type ${JSON.stringify(m.type)} is not valid`);
        const opts = m.options.filter((o) => o.length > 0);
        // spawnFast, not execa: a fork of the daemon costs more than the mount (src/shim/runc.ts).
        const r = await spawnCollect(this.reaper, 'mount', [
          '-t',
          m.type,
          ...(opts.length ? ['-o', opts.join(',')] : []),
          m.source,
          target,
        ]);
        if (r.exitCode !== 0) throw new Error(r.stderr.trim() || `mount exited with ${r.exitCode}`);
        mounted.push(target);
      }
    } catch (err) {
      for (const t of mounted.reverse()) await unmount(t);
      throw new FailedPreconditionError(`mounting the rootfs of task ${id}: ${(err as Error).message}`);
    }
    return { mounted, strataRoot: false, rootDir };
  }

  /**
   * The manifest digest of the image containerd made the task from, imported from containerd's
   * content store when strata lacks it (containerd-images.ts). `why` says what failed, for the
   * fallback to containerd's rootfs; neither when containerd names no image (`ctr run --rootfs`).
   */
  private async containerdImage(
    ns: string,
    id: string,
    config: RuntimeConfig,
  ): Promise<{ digest?: string; why?: string }> {
    const importing = this.opts.containerdImport ?? process.env.STRATA_CONTAINERD_IMPORT !== '0';
    const address = importing ? this.registrations.get(`${ns}/${id}`)?.containerdAddress : undefined;
    const hint = config.annotations?.[CRI_IMAGE_ANNOTATION];
    if (!address) {
      // Import off, or not registered by the shim binary (a test driving the Task service by
      // hand): only what strata holds by CRI's name.
      if (!hint) return {};
      try {
        return { digest: (await resolveImageRecord(this.opts.storeRoot, hint)).manifestDigest };
      } catch (err) {
        if (!(err instanceof StrataError)) throw err;
        return { why: `strata holds no image ${hint}` };
      }
    }
    try {
      const image = await this.images.forTask({ address, namespace: ns, id, imageName: hint });
      return { digest: image.digest };
    } catch (err) {
      if (err instanceof NotFoundError && !hint && /names no image/.test(err.message)) return {};
      if (!(err instanceof StrataError)) throw err;
      this.opts.log('warn', `task ${ns}/${id}: its image could not be served from strata: ${err.message}`);
      return { why: `its image could not be served from strata (${err.message})` };
    }
  }

  private async releaseRoot(
    t: { ns: string; id: string; mounted: string[]; strataRoot: boolean; rootDir: string },
    why: string,
  ): Promise<void> {
    for (const m of [...t.mounted].reverse()) await unmount(m);
    t.mounted = [];
    if (!t.strataRoot) return;
    await this.opts.roots?.containerEnded(t.id, why);
    this.clearRootDir(t.ns, t.id, t.rootDir);
  }

  /** runc's mount points in a strata-served root's (empty) directory go (root-dir.ts). */
  private clearRootDir(ns: string, id: string, rootDir: string): void {
    const left = clearMountPoints(rootDir);
    if (left.length)
      this.opts.log('warn', `task ${ns}/${id}: left in its root directory: ${left.slice(0, 5).join(', ')}`);
  }

  // ---- Start / Exec ----

  private async start(id: string, execId: string, ctx: CallContext): Promise<{ pid: number }> {
    const t = this.task(id, ctx);
    const p = this.proc(t, execId);
    if (p.state !== 'created' || p.exit || p.starting) {
      throw new FailedPreconditionError(`${execId ? `process ${execId}` : `task ${id}`}: already started`);
    }
    p.starting = true;
    try {
      return await this.startProc(t, p);
    } finally {
      p.setStarted();
    }
  }

  private async startProc(t: Task, p: Proc): Promise<{ pid: number }> {
    const { id } = t;
    const { execId } = p;
    if (!execId) {
      await t.runc.start(id, p.exited);
      if (!p.exit) p.state = 'running';
      // Queued, not awaited (as containerd's runc shim does): the queue keeps TaskStart before
      // TaskExit, which is queued only once this start is over.
      void this.publish(t, TOPICS.start, TaskStartSchema, { containerId: id, pid: p.pid });
      return { pid: p.pid };
    }
    if (t.init.exit)
      throw new FailedPreconditionError(`task ${id} has exited: cannot start process ${execId}`);
    const dir = this.workDir(t.ns, id);
    const specFile = join(dir, `exec-${execId}.json`);
    const pidFile = join(dir, `exec-${execId}.pid`);
    writeFileSync(specFile, p.spec ?? '{}', { mode: 0o600 });
    const consoleSocket = p.io.paths.terminal ? await ConsoleSocket.open(dir) : undefined;
    try {
      await t.runc.exec(
        id,
        specFile,
        pidFile,
        p.io.child,
        join(dir, `exec-${execId}.log`),
        consoleSocket?.path,
      );
      if (consoleSocket) p.io.attachConsole(await consoleSocket.receive());
    } catch (err) {
      p.io.close();
      throw err;
    } finally {
      p.io.closeChildEnds();
      consoleSocket?.close();
      rmSync(specFile, { force: true });
    }
    p.pid = Number(readFileSync(pidFile, 'utf8').trim());
    rmSync(pidFile, { force: true });
    p.state = 'running';
    this.reaper.watch(p.pid, (e) => void this.onExit(t, p, e));
    void this.publish(t, TOPICS.execStarted, TaskExecStartedSchema, { containerId: id, execId, pid: p.pid });
    return { pid: p.pid };
  }

  private async exec(
    r: {
      id: string;
      execId: string;
      terminal: boolean;
      stdin: string;
      stdout: string;
      stderr: string;
      spec?: { value: Uint8Array };
    },
    ctx: CallContext,
  ): Promise<Record<string, never>> {
    const t = this.task(r.id, ctx);
    checkContainerId(r.execId, 'exec id');
    if (t.execs.has(r.execId))
      throw new AlreadyExistsError(`process ${r.execId} of task ${r.id}: already exists`);
    if (t.init.exit) throw new FailedPreconditionError(`task ${r.id} has exited: cannot exec in it`);
    const text = Buffer.from(r.spec?.value ?? new Uint8Array(0)).toString('utf8');
    let spec: unknown;
    try {
      spec = JSON.parse(text);
    } catch {
      throw new InvalidArgumentError(`process ${r.execId}: its spec is not a runtime-spec Process in JSON`);
    }
    if (typeof spec !== 'object' || spec === null || !Array.isArray((spec as { args?: unknown }).args)) {
      throw new InvalidArgumentError(`process ${r.execId}: its spec has no args`);
    }
    const io = new ProcessIO(
      { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, terminal: r.terminal },
      { id: r.execId, namespace: t.ns },
    );
    try {
      await io.ready;
    } catch (err) {
      io.close();
      throw err;
    }
    if (t.execs.has(r.execId)) {
      io.close();
      throw new AlreadyExistsError(`process ${r.execId} of task ${r.id}: already exists`);
    }
    t.execs.set(r.execId, newProc(r.execId, io, text));
    await this.publish(t, TOPICS.execAdded, TaskExecAddedSchema, { containerId: r.id, execId: r.execId });
    return {};
  }

  // ---- exits ----

  private async onExit(t: Task, p: Proc, e: Exit): Promise<void> {
    p.exit = e;
    await p.io.drained();
    p.state = 'stopped';
    p.setExited(e);
    // Never TaskExit before TaskStart: wait for a start in progress (its event goes first). A
    // process that never started (killed while created) has no TaskStart to wait for.
    if (p.starting) await p.started;
    if (!p.execId && !t.deleting) t.afterExit ??= this.afterInitExit(t);
    await this.publish(t, TOPICS.exit, TaskExitSchema, {
      containerId: t.id,
      id: p.execId || t.id,
      pid: p.pid,
      exitStatus: e.status,
      exitedAt: ts(e.at),
    });
    if (!p.execId) {
      // The init is gone, and with it the container's pid namespace: its execs are gone too.
      for (const x of t.execs.values()) if (!x.exit && x.state === 'created') x.io.close();
    }
  }

  private async wait(
    id: string,
    execId: string,
    ctx: CallContext,
  ): Promise<{ exitStatus: number; exitedAt?: Timestamp }> {
    const p = this.proc(this.task(id, ctx), execId);
    const e = await new Promise<Exit>((resolve, reject) => {
      const onAbort = (): void => reject(new TtrpcError(Code.Canceled, 'wait canceled'));
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      void p.exited.then((x) => {
        ctx.signal.removeEventListener('abort', onAbort);
        resolve(x);
      });
    });
    return { exitStatus: e.status, exitedAt: ts(e.at) };
  }

  // ---- Delete ----

  private async delete(
    id: string,
    execId: string,
    ctx: CallContext,
  ): Promise<MessageInitShape<typeof DeleteResponseSchema>> {
    const t = this.task(id, ctx);
    if (execId) {
      const p = this.proc(t, execId);
      if (p.state === 'running' || p.state === 'paused') {
        throw new FailedPreconditionError(`process ${execId} of task ${id} is running: kill it first`);
      }
      t.execs.delete(execId);
      p.io.close();
      return { pid: p.pid, exitStatus: p.exit?.status ?? 0, exitedAt: ts(p.exit?.at) };
    }
    if (t.init.state === 'running' || t.init.state === 'paused') {
      throw new FailedPreconditionError(`task ${id} is running: kill it before deleting it`);
    }
    t.deleting ??= this.teardown(t, 'its task was deleted');
    return t.deleting;
  }

  /** Everything of a task goes: runc's state, the process (if it never started), stdio, the root. */
  private async teardown(t: Task, why: string): Promise<MessageInitShape<typeof DeleteResponseSchema>> {
    if (t.afterExit) await t.afterExit;
    else await this.runcDelete(t);
    // runc delete --force killed a created (never started) init: its exit comes through the reaper.
    if (!t.init.exit) await Promise.race([t.init.exited, new Promise((r) => setTimeout(r, 2000))]);
    for (const p of [t.init, ...t.execs.values()]) p.io.close();
    await this.releaseRoot(t, why);
    rmSync(join(this.opts.stateDir, t.ns, 'tasks', t.id), { recursive: true, force: true });
    this.tasks.delete(`${t.ns}/${t.id}`);
    const res = {
      pid: t.init.pid,
      exitStatus: t.init.exit?.status ?? UNKNOWN_EXIT_STATUS,
      exitedAt: ts(t.init.exit?.at ?? new Date()),
    };
    this.remember(`${t.ns}/${t.id}`, res);
    void this.publish(t, TOPICS.delete, TaskDeleteSchema, { containerId: t.id, id: t.id, ...res });
    this.registrations.delete(`${t.ns}/${t.id}`);
    this.opts.log('info', `task ${t.ns}/${t.id}: deleted (exit status ${res.exitStatus})`);
    return res;
  }

  private async runcDelete(t: Task): Promise<void> {
    await t.runc.delete(t.id, true).catch((err: unknown) => {
      if (!(err instanceof NotFoundError))
        this.opts.log('warn', `task ${t.ns}/${t.id}: ${(err as Error).message}`);
    });
  }

  /**
   * The init exited (and its start, if any, is over): nothing needs runc's state or containerd's
   * rootfs mount any more (a stopped task answers State, Wait, Kill and Delete from memory; Exec,
   * Pause, Stats refuse it). They go now, while containerd reads the exit, so Delete finds them
   * gone instead of paying two process starts. runc delete also kills what is left in the
   * container's cgroup, as containerd's shim does for a container without its own pid namespace.
   */
  private async afterInitExit(t: Task): Promise<void> {
    await this.runcDelete(t);
    const mounted = t.mounted;
    t.mounted = [];
    for (const m of [...mounted].reverse()) {
      await unmount(m).catch((err: unknown) =>
        this.opts.log('warn', `task ${t.ns}/${t.id}: ${(err as Error).message}`),
      );
    }
  }

  private remember(key: string, res: MessageInitShape<typeof DeleteResponseSchema>): void {
    this.finished.delete(key);
    this.finished.set(key, res);
    while (this.finished.size > 1024) this.finished.delete(this.finished.keys().next().value as string);
  }

  /** The shim's `delete`: idempotent. A live task is killed and torn down; a known end is reported. */
  private async cleanup(
    ns: string,
    id: string,
    bundle: string,
  ): Promise<MessageInitShape<typeof DeleteResponseSchema>> {
    checkContainerId(id, 'task id');
    const key = `${ns}/${id}`;
    const t = this.tasks.get(key);
    if (t) {
      if (!t.init.exit) {
        await t.runc.kill(id, 9, true).catch(() => undefined);
        await Promise.race([t.init.exited, new Promise((r) => setTimeout(r, 3000))]);
      }
      t.deleting ??= this.teardown(t, 'the shim was deleted');
      return t.deleting;
    }
    const known = this.finished.get(key);
    if (known) return known;
    // Nothing known here (a daemon restarted since): make sure runc and the mount are gone.
    await this.runcFor(ns)
      .delete(id, true)
      .catch(() => undefined);
    if (bundle && isAbsolute(bundle) && existsSync(join(bundle, 'rootfs'))) {
      await unmount(join(bundle, 'rootfs'), true);
      // A strata-served root's mount points (or an empty dir): only on the bundle's filesystem.
      if (statSync(join(bundle, 'rootfs')).dev === statSync(bundle).dev)
        this.clearRootDir(ns, id, join(bundle, 'rootfs'));
    }
    this.registrations.delete(key);
    return { pid: 0, exitStatus: UNKNOWN_EXIT_STATUS, exitedAt: ts(new Date()) };
  }

  // ---- signals, state, resources ----

  private async kill(
    id: string,
    execId: string,
    signal: number,
    all: boolean,
    ctx: CallContext,
  ): Promise<Record<string, never>> {
    const t = this.task(id, ctx);
    const p = this.proc(t, execId);
    if (!Number.isInteger(signal) || signal < 0 || signal > 64)
      throw new InvalidArgumentError(`signal ${signal} is not valid`);
    if (p.exit) return {}; // CRI kills exited tasks and expects success
    if (!execId) {
      try {
        await t.runc.kill(id, signal, all);
      } catch (err) {
        if (!p.exit && !(await exitedSoon(p))) throw err;
      }
      return {};
    }
    if (p.state === 'created')
      throw new FailedPreconditionError(`process ${execId} of task ${id} has not started`);
    // Not reaped yet (the reaper holds its pidfd and reaps only on exit): the pid is still its own.
    try {
      process.kill(p.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
    return {};
  }

  private state(id: string, execId: string, ctx: CallContext) {
    const t = this.task(id, ctx);
    const p = this.proc(t, execId);
    return {
      id: execId || id,
      bundle: t.bundle,
      pid: p.pid,
      status: STATUS[p.state],
      stdin: p.io.paths.stdin,
      stdout: p.io.paths.stdout,
      stderr: p.io.paths.stderr,
      terminal: p.io.paths.terminal,
      exitStatus: p.exit?.status ?? 0,
      exitedAt: ts(p.exit?.at),
      execId,
    };
  }

  private async pids(id: string, ctx: CallContext): Promise<{ processes: { pid: number }[] }> {
    const t = this.task(id, ctx);
    if (t.init.exit) return { processes: [] };
    const pids = await t.runc.ps(id);
    return { processes: pids.map((pid) => ({ pid })) };
  }

  private async pause(id: string, ctx: CallContext, pause: boolean): Promise<Record<string, never>> {
    const t = this.task(id, ctx);
    if (t.init.exit) throw new FailedPreconditionError(`task ${id} has exited`);
    if (pause) {
      await t.runc.pause(id);
      t.init.state = 'paused';
      await this.publish(t, TOPICS.paused, TaskPausedSchema, { containerId: id });
    } else {
      await t.runc.resume(id);
      t.init.state = 'running';
      await this.publish(t, TOPICS.resumed, TaskResumedSchema, { containerId: id });
    }
    return {};
  }

  private async update(
    id: string,
    resources: Uint8Array | undefined,
    ctx: CallContext,
  ): Promise<Record<string, never>> {
    const t = this.task(id, ctx);
    const text = Buffer.from(resources ?? new Uint8Array(0)).toString('utf8');
    try {
      if (typeof JSON.parse(text) !== 'object') throw new Error('not an object');
    } catch {
      throw new InvalidArgumentError(
        `task ${id}: update resources are not runtime-spec LinuxResources in JSON`,
      );
    }
    await t.runc.update(id, text);
    return {};
  }

  private async stats(id: string, ctx: CallContext) {
    const t = this.task(id, ctx);
    if (t.init.exit) throw new FailedPreconditionError(`task ${id} has exited: no statistics`);
    const s = await t.runc.stats(id);
    return { stats: isCgroup2Host() ? v2Metrics(s) : v1Metrics(s) };
  }

  /** The daemon stops: tasks keep running (runc holds them); only our side closes. */
  close(): void {
    this.images.close();
    this.reaper.stop();
    this.events.close();
    for (const t of this.tasks.values()) for (const p of [t.init, ...t.execs.values()]) p.io.close();
  }
}

async function exitedSoon(p: Proc, ms = 500): Promise<boolean> {
  return Promise.race([
    p.exited.then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), ms)),
  ]);
}

async function unmount(target: string, quiet = false): Promise<void> {
  // umount2(2) straight from the addon (a umount(8) process costs more than the unmount itself).
  try {
    await native.umount2(target, 0);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EINVAL' || code === 'ENOENT') return; // not mounted (any more)
  }
  try {
    await native.umount2(target, constants.MNT_DETACH);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!quiet && code !== 'EINVAL' && code !== 'ENOENT') {
      throw new FailedPreconditionError(`unmounting ${target}: ${(err as Error).message}`);
    }
  }
}

export type { DeleteResponse };
