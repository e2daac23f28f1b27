// The daemon's policy for container roots, one method per hook stage. createRuntime serves the
// image (mount/serve.ts: the same code as `strata mount`, with the container's lease, plus a
// writable overlay when the config wants one); createContainer gives the mount away; the end of
// the FUSE session (ENODEV: the container's mount namespace is gone), poststop, the runtime dying
// before createContainer, or a timeout release everything. Each root's life is a state machine
// (container-root.ts). Whatever happens, nothing is left: no mount fd, no session, no lease.
import { closeSync, statSync } from 'node:fs';
import { resolve } from 'node:path';

import {
  prepareImage,
  serveAdopted,
  serveImage,
  type AdoptedImage,
  type PreparedImage,
  type ServedImage,
} from '../mount/serve.js';
import type { PlaceholderSpec } from '../mount/fs/placeholders.js';
import type { OverlayOptions } from '../mount/overlay.js';
import type { FuseSession, SessionEnd } from '../mount/session.js';
import { loadBundleConfig, parseHookState } from '../spec/bundle-config.js';
import type { ServedContainer } from '../schema/generated/daemon-api.js';
import type { RuntimeConfig } from '../schema/generated/runtime-config.js';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../errors.js';
import { ContainerRoot, type Guard, type ReleaseOutcome } from './container-root.js';
import { IMAGE_ANNOTATION, PULL_ANNOTATION } from '../spec/annotations.js';
import type { HeldFd } from './fd-holder.js';
import type { SessionStore } from './fd-store.js';
import { BackingJournal, decodeHeldSession, encodeHeldSession, type HeldSession } from './held-session.js';
import { containerLease, leaseIdFor, resolveBundleImage } from './image-lease.js';
import { IndexCache } from './index-cache.js';
import type { Logger } from './log.js';
import { placeholdersFor } from './mount-points.js';
import { watchPid } from './pid-watch.js';

export interface ContainerManagerOptions {
  storeRoot: string;
  logger: Logger;
  /** How long a prepared root waits for createContainer. Default 60 s. */
  prepareTimeoutMs?: number;
  /** How long a release waits for the session to end by itself before aborting it. Default 5 s. */
  releaseGraceMs?: number;
  /** Where each session's /dev/fuse fd is deposited, so that it outlives this daemon. */
  holder?: SessionStore;
  /** Where the sessions' backing journals go (held-session.ts), with `holder`. */
  journalDir?: string;
}

/** What createContainer hands to the hook. The caller owns mountFd: send it, then close it. */
export interface AttachInfo {
  mountFd: number;
  rootfs: string;
  readonly: boolean;
}

interface PrepareRequest {
  id: string;
  bundle: string;
  config: RuntimeConfig;
  /** The container's init, from the hook state: its death before createContainer releases. */
  pid?: number;
  /** The hook state's annotations (podman passes the image annotation there). */
  stateAnnotations?: Record<string, string>;
  /** The image, when the caller found it elsewhere than the annotations (strata-runtime). */
  ref?: string;
  /** Where a writable root keeps its upper layer (default: a fresh tmpfs, gone with the root). */
  overlay?: OverlayOptions;
  /** The runtime that is to attach this root (strata-runtime's pid, which stays the runtime's
   * across its exec, and its start time when it asked): if it ends first, nobody will attach it.
   * The watch belongs to this root alone: it stops when the root is attached or released, so a
   * runtime's end can never release a later root of the same container id (a restart). */
  runtime?: { pid: number; startTime: string | undefined };
}

interface Served {
  root: ContainerRoot;
  session: FuseSession;
  leaseId: string;
  image: string;
  bundle: string;
  rootfs: string;
  readonly: boolean;
  since: Date;
  /** Its name at the fd holder and its backing journal, when deposited; `mount`: until the
   * container has its root, the holder keeps the mount fd too (under heldMountName). */
  held?: { name: string; journal: BackingJournal; mount?: boolean };
  /** Left to the next daemon (handOverAll): nothing of it may be released here. */
  handedOver?: boolean;
}

/** The fd holder's name for the mount fd of a root still prepared (session `name`). */
export function heldMountName(name: string): string {
  return `${name}.mnt`;
}

function isDirectory(path: string): boolean | undefined {
  try {
    return statSync(path).isDirectory();
  } catch {
    return undefined;
  }
}

export class ContainerManager {
  readonly indexes: IndexCache;
  private readonly served = new Map<string, Served>();
  /** Roots being prepared ahead of their runtime (strata run). */
  private readonly pending = new Map<string, Promise<void>>();
  /** Why a root prepared ahead could not be given to its container, for `strata run`'s message
   * (crun does not show a hook's stderr). Taken by takeFailure. */
  private readonly failures = new Map<string, string>();
  private readonly storeRoot: string;
  private readonly logger: Logger;
  private readonly prepareTimeoutMs: number;
  private readonly releaseGraceMs: number;
  private readonly holder?: SessionStore;
  private readonly journalDir?: string;

  constructor(opts: ContainerManagerOptions) {
    this.holder = opts.holder;
    this.journalDir = opts.journalDir;
    this.storeRoot = opts.storeRoot;
    this.logger = opts.logger;
    this.prepareTimeoutMs = opts.prepareTimeoutMs ?? 60_000;
    this.releaseGraceMs = opts.releaseGraceMs ?? 5_000;
    this.indexes = new IndexCache(opts.storeRoot);
  }

  /** Set once handOverAll began: foreground runs are the next daemon's to finish (run-service). */
  handingOver = false;

  get size(): number {
    return this.served.size;
  }

  list(): ServedContainer[] {
    return [...this.served.entries()].flatMap(([id, s]) => {
      const state = s.root.status;
      // A root being released is on its way out: no longer listed.
      if (state !== 'prepared' && state !== 'attached') return [];
      return [
        { id, image: s.image, bundle: s.bundle, state, since: s.since.toISOString(), readonly: s.readonly },
      ];
    });
  }

  /** The bundle's PULL_ANNOTATION: pull `ref` with the daemon's credentials when the policy says. */
  private async pullFor(ref: string, policy: string, bundle: string): Promise<void> {
    if (policy !== 'missing' && policy !== 'always' && policy !== 'never') {
      throw new InvalidArgumentError(
        `annotation ${PULL_ANNOTATION}=${JSON.stringify(policy)} of bundle ${bundle}: must be missing, always or never`,
        { op: 'prepare', path: bundle },
      );
    }
    // Loaded only when a bundle asks: the daemon's start path stays without undici.
    const { ensureImage } = await import('../run/pull-policy.js');
    await ensureImage(this.storeRoot, ref, policy, (line) => this.logger.log('info', line.trim()));
  }

  /** createRuntime: resolve the image, take a lease, make and serve the mount. */
  async createRuntime(stateJson: string): Promise<void> {
    const state = parseHookState(stateJson);
    await this.prepare({
      id: state.id,
      bundle: state.bundle,
      config: loadBundleConfig(state.bundle),
      pid: state.pid,
      stateAnnotations: state.annotations,
    });
  }

  /**
   * `strata run`: prepare the root while the runtime starts (the bundle has no createRuntime
   * hook); createContainer waits for it. The caller releases it when the runtime ends.
   */
  prepareAhead(
    id: string,
    bundle: string,
    config: RuntimeConfig,
    found: Pick<PrepareRequest, 'ref' | 'overlay' | 'runtime'> = {},
  ): Promise<void> {
    // A second request while one is pending must not take the first one's place here.
    if (this.pending.has(id)) return Promise.reject(this.alreadyServed(id));
    const prepared = this.prepare({ id, bundle, config, ...found });
    this.pending.set(id, prepared);
    void prepared.then(
      () => this.pending.delete(id),
      (err: unknown) => {
        this.pending.delete(id);
        this.failures.set(id, err instanceof Error ? err.message : String(err));
      },
    );
    return prepared;
  }

  /** What went wrong with a root prepared ahead, once (undefined: nothing known). */
  takeFailure(id: string): string | undefined {
    const why = this.failures.get(id);
    this.failures.delete(id);
    return why;
  }

  private async prepare(req: PrepareRequest): Promise<void> {
    const started = performance.now();
    const { id, bundle, config } = req;
    if (this.pending.has(id)) throw this.alreadyServed(id);
    const previous = this.served.get(id);
    if (previous) await this.previousGone(id, previous, req.runtime !== undefined);
    if (!config.root?.path) {
      throw new InvalidArgumentError(`config.json of bundle ${bundle} has no root.path`, {
        op: 'prepare',
        path: bundle,
      });
    }
    const rootfs = resolve(bundle, config.root.path);
    const readonly = config.root.readonly ?? false;
    const ref = req.ref ?? config.annotations?.[IMAGE_ANNOTATION] ?? req.stateAnnotations?.[IMAGE_ANNOTATION];
    if (!ref) {
      throw new FailedPreconditionError(
        `config.json of bundle ${bundle} has no ${IMAGE_ANNOTATION} annotation naming the image to run ` +
          '(write the bundle with `strata bundle IMAGE DIR`)',
        { op: 'prepare', path: bundle },
      );
    }
    const pull = config.annotations?.[PULL_ANNOTATION] ?? req.stateAnnotations?.[PULL_ANNOTATION];
    if (pull !== undefined) await this.pullFor(ref, pull, bundle);
    const image = await resolveBundleImage(this.storeRoot, ref, bundle);
    const digest = image.manifestDigest;
    const resolved = performance.now();

    const lease = containerLease(id, bundle, (leaseId) =>
      this.logger.log('warn', `replacing stale lease ${leaseId}`),
    );
    const placeholders = placeholdersFor(config.mounts, isDirectory);
    const name = leaseIdFor(id);
    const journal =
      this.holder && this.journalDir ? new BackingJournal(this.journalDir, name, true) : undefined;
    let served: ServedImage;
    try {
      served = await serveImage({
        storeRoot: this.storeRoot,
        ref,
        image,
        loadIndex: (i) => this.indexes.get(i.indexDigest),
        lease,
        placeholders,
        // The source names the container in mountinfo (where a mount shows up if it ever leaks).
        fsname: `strata-ctr:${id.replace(/[^A-Za-z0-9_.+-]/g, '_')}`,
        subtype: 'strata',
        overlay: readonly ? false : (req.overlay ?? true),
        onBacking: journal?.record,
      });
    } catch (err) {
      journal?.remove();
      throw err;
    }
    const { session } = served;
    const mounted = performance.now();
    const held = journal
      ? this.deposit(name, journal, session.devFd, {
          v: 1,
          container: id,
          bundle,
          rootfs,
          readonly,
          image: digest,
          index: image.indexDigest,
          store: this.storeRoot,
          placeholders,
          since: new Date().toISOString(),
        })
      : undefined;
    // Until createContainer takes it, the mount exists only as our fd: the holder keeps a copy,
    // so that a daemon killed meanwhile leaves the next one a root the container can still get.
    if (held) held.mount = this.depositMount(name, served.mountFd, id);

    // The hook state's pid is the container's init as the host sees it here; if it dies before
    // createContainer, nobody will ever attach (or close) our mount.
    const guards: Guard[] = [];
    const pid = req.pid;
    if (pid && pid > 1) {
      guards.push(
        watchPid(pid, () => void this.release(id, `its init (pid ${pid}) died before createContainer`)),
      );
    }
    const runtime = req.runtime;
    if (runtime) {
      const why = `its runtime (pid ${runtime.pid}) ended without attaching it`;
      guards.push(watchPid(runtime.pid, () => void this.release(id, why), 200, runtime.startTime));
    }
    const timer = setTimeout(
      () => void this.release(id, `createContainer did not come within ${this.prepareTimeoutMs} ms`),
      this.prepareTimeoutMs,
    );
    timer.unref();
    guards.push({ stop: () => clearTimeout(timer) });
    this.served.set(id, {
      root: new ContainerRoot(id, served, guards),
      session,
      leaseId: served.lease.id,
      image: digest,
      bundle,
      rootfs,
      readonly,
      since: new Date(),
      held,
    });
    this.watchSession(id, session);
    this.logger.log(
      'info',
      `container ${id}: prepared ${readonly ? 'read-only' : 'writable'} root of image ${digest} ` +
        `(ref ${ref}) for bundle ${bundle} in ${(performance.now() - started).toFixed(1)} ms ` +
        `(image record ${(resolved - started).toFixed(1)}, mounts ${(mounted - resolved).toFixed(1)} ms)`,
    );
  }

  private alreadyServed(id: string): AlreadyExistsError {
    return new AlreadyExistsError(`container ${id} already has a root served by this daemon`, {
      op: 'prepare',
    });
  }

  /**
   * A new root for `id` while an earlier one is still here. With `replacing` (the request comes
   * from a runtime about to create `id`, which runc refuses while a container `id` exists:
   * podman's restart deleted the earlier one), the earlier root is waited for, up to the release
   * grace time: its container's mount namespace is gone or going, and its session's end (ENODEV)
   * or its runtime's end may reach this daemon a moment after the new create does, on a busy
   * machine. Anything else (a hook's request), or still there after that: AlreadyExists.
   */
  private async previousGone(id: string, previous: Served, replacing: boolean): Promise<void> {
    if (!replacing) throw this.alreadyServed(id);
    const started = performance.now();
    const until = Date.now() + this.releaseGraceMs;
    while (this.served.get(id) === previous && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    // A concurrent request for the same id took the place meanwhile (its pending entry), or the
    // earlier root stayed.
    if (this.served.has(id)) throw this.alreadyServed(id);
    this.logger.log(
      'info',
      `container ${id}: waited ${(performance.now() - started).toFixed(1)} ms for its earlier root to be released`,
    );
  }

  private watchSession(id: string, session: FuseSession): void {
    session.on('end', (end: SessionEnd) => {
      const detail = end.reason === 'unmounted' ? 'ENODEV' : (end.detail ?? end.reason);
      void this.release(id, `FUSE session ended: ${end.reason} (${detail})`);
    });
    session.on('warn', (w: { message: string }) => this.logger.log('warn', `container ${id}: ${w.message}`));
  }

  /** Deposits a session's device with the fd holder; a failure costs only its restartability. */
  private deposit(name: string, journal: BackingJournal, devFd: number, tag: HeldSession): Served['held'] {
    try {
      this.holder!.put(name, encodeHeldSession(tag), devFd);
      return { name, journal };
    } catch (err) {
      this.logger.log(
        'warn',
        `container ${tag.container}: its root will not outlive this daemon: ${(err as Error).message}`,
      );
      journal.remove();
      return undefined;
    }
  }

  private depositMount(name: string, mountFd: number, id: string): boolean {
    try {
      this.holder!.put(heldMountName(name), '', mountFd);
      return true;
    } catch (err) {
      this.logger.log(
        'warn',
        `container ${id}: its root will not outlive this daemon before createContainer: ${(err as Error).message}`,
      );
      return false;
    }
  }

  /** The holder lets go of a root's mount fd (the container has it, or it is released). */
  private dropMount(s: Served): void {
    if (!s.held?.mount) return;
    s.held.mount = false;
    this.dropHeld(heldMountName(s.held.name));
  }

  /**
   * Serves again a session an earlier daemon deposited with the fd holder: same image, same
   * placeholders, the backing ids it left open, its lease taken over. A session whose mount is
   * gone (the container ended while no daemon ran) reads ENODEV at once and is released like any
   * other. Resolves false when the session could not be taken over (it is then dropped).
   */
  async adopt(h: HeldFd, mount?: HeldFd): Promise<boolean> {
    const start = await this.prepareAdoption(h);
    return start ? start(mount) : false;
  }

  /**
   * adopt() in two steps: this one resolves the image, loads its index and takes the lease over;
   * the function it resolves with reads the backing journal and starts serving (false: failed,
   * dropped), given the root's held mount fd when the root was still prepared (it is then
   * prepared here: createContainer gets that mount). undefined: the session cannot be taken
   * over (dropped already).
   */
  async prepareAdoption(h: HeldFd): Promise<((mount?: HeldFd) => boolean) | undefined> {
    const drop = (): void => {
      closeSync(h.fd);
      this.dropHeld(h.name);
      this.dropHeld(heldMountName(h.name));
    };
    let tag: HeldSession;
    try {
      tag = decodeHeldSession(h.tag, h.name);
      if (h.name !== leaseIdFor(tag.container)) throw new Error(`it is held as ${h.name}`);
      if (tag.store !== this.storeRoot)
        throw new Error(`it serves the store ${tag.store}, not ${this.storeRoot}`);
    } catch (err) {
      this.logger.log('warn', `dropping held session ${h.name}: ${(err as Error).message}`);
      drop();
      return undefined;
    }
    const id = tag.container;
    if (this.served.has(id)) {
      closeSync(h.fd);
      return (mount) => {
        if (mount) closeSync(mount.fd);
        return true;
      };
    }
    const t0 = performance.now();
    const journalDir = this.journalDir!;
    // Opened (and compacted) only once serving starts: until then a daemon handing over may
    // still write it, and it makes no backing id before.
    let journal: BackingJournal | undefined;
    let prepared: PreparedImage;
    try {
      prepared = await prepareImage({
        storeRoot: this.storeRoot,
        ref: tag.image,
        loadIndex: (i) => this.indexes.get(i.indexDigest),
        lease: containerLease(id, tag.bundle, () => undefined),
        placeholders: tag.placeholders as PlaceholderSpec[],
        onBacking: (ino, backingId, open) => journal?.record(ino, backingId, open),
      });
    } catch (err) {
      this.logger.log('warn', `container ${id}: cannot take its root over: ${(err as Error).message}`);
      BackingJournal.discard(journalDir, h.name);
      drop();
      return undefined;
    }
    return (mount) => {
      let adopted: AdoptedImage;
      try {
        journal = new BackingJournal(journalDir, h.name, false);
        adopted = serveAdopted(prepared, { devFd: h.fd, backings: journal.openIds() });
      } catch (err) {
        this.logger.log('warn', `container ${id}: cannot take its root over: ${(err as Error).message}`);
        if (journal) journal.remove();
        else BackingJournal.discard(journalDir, h.name);
        this.dropHeld(h.name);
        if (mount) {
          closeSync(mount.fd);
          this.dropHeld(mount.name);
        }
        return false;
      }
      // A root still prepared when its daemon went: it waits for createContainer here.
      const guards: Guard[] = [];
      if (mount) {
        const timer = setTimeout(
          () => void this.release(id, `createContainer did not come within ${this.prepareTimeoutMs} ms`),
          this.prepareTimeoutMs,
        );
        timer.unref();
        guards.push({ stop: () => clearTimeout(timer) });
      }
      this.served.set(id, {
        root: new ContainerRoot(id, { ...adopted, mountFd: mount?.fd ?? -1 }, guards, true),
        session: adopted.session,
        leaseId: adopted.lease.id,
        image: tag.image,
        bundle: tag.bundle,
        rootfs: tag.rootfs,
        readonly: tag.readonly,
        since: new Date(tag.since),
        held: { name: h.name, journal: journal!, mount: mount !== undefined },
      });
      this.watchSession(id, adopted.session);
      this.logger.log(
        'info',
        `container ${id}: took its ${mount ? 'prepared ' : ''}root over from an earlier daemon (image ${tag.image}) in ` +
          `${(performance.now() - t0).toFixed(1)} ms`,
      );
      return true;
    };
  }

  private dropHeld(name: string): void {
    try {
      this.holder?.drop(name);
    } catch (err) {
      this.logger.log('warn', `dropping held session ${name}: ${(err as Error).message}`);
    }
  }

  /** Every attached root stops being served here and is left, with its lease and held fd, to
   * the daemon that asked (strata daemon --upgrade). Roots still waiting for createContainer
   * are waited for, up to `waitMs`. */
  async handOverAll(waitMs: number): Promise<void> {
    this.handingOver = true;
    const until = Date.now() + waitMs;
    // A prepared root whose mount the holder keeps is handed over as it is; only one whose mount
    // exists in this process alone must be attached first.
    const onlyHere = (s: Served): boolean => s.root.status === 'prepared' && !s.held?.mount;
    while ([...this.served.values()].some(onlyHere) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 10));
    await Promise.all(
      [...this.served.entries()].map(async ([id, s]) => {
        if (!s.held || (s.root.status !== 'attached' && s.root.status !== 'prepared') || onlyHere(s)) return;
        s.handedOver = true;
        s.held.journal.close();
        await s.root.handOver().catch(() => undefined);
        if (this.served.get(id) === s) this.served.delete(id);
      }),
    );
  }

  /** Queue again what the sessions' earlier servers read and never answered. */
  resendAll(): void {
    for (const s of this.served.values()) if (s.session.isOpen) s.session.resend();
  }

  /** createContainer: hand the prepared mount over. The caller sends mountFd and closes it. */
  async createContainer(stateJson: string): Promise<AttachInfo> {
    const { id } = parseHookState(stateJson);
    await this.pending.get(id); // a failed preparation fails this hook with its own error
    const s = this.served.get(id);
    if (!s) {
      throw new NotFoundError(
        `no root prepared for container ${id}: its createRuntime hook did not run, failed, or came too long ago`,
        { op: 'attach' },
      );
    }
    const mountFd = s.root.attach();
    // The container's mount keeps the session now; a held copy would outlive the container.
    this.dropMount(s);
    this.logger.log('info', `container ${id}: root handed to createContainer (rootfs ${s.rootfs})`);
    return { mountFd, rootfs: s.rootfs, readonly: s.readonly };
  }

  /**
   * poststop: release whatever is left; unknown ids are fine (already released, or never ours).
   * The hook is answered before the release ends: the runtime waits for its poststop hooks
   * before it exits, and the release (session end, handler, lease) has nothing to tell it. The
   * root leaves list() at once; its lease goes when the release ends (as for any release).
   */
  poststop(stateJson: string): Promise<void> {
    const { id } = parseHookState(stateJson);
    void this.release(id, 'poststop').catch((err: unknown) =>
      this.logger.log('error', `container ${id}: release after poststop: ${String(err)}`),
    );
    return Promise.resolve();
  }

  /**
   * The container `id` has ended (poststop, or its runtime exited): release what is left. A root
   * still held by the container's mount namespace is released in the background: that namespace
   * is being torn down, its ENODEV follows within milliseconds and releases everything, and
   * waiting for it would only delay the runtime (or strata run) — the release still aborts the
   * session if it has not ended within the grace time. Anything else is released before this
   * resolves.
   */
  async containerEnded(id: string, why: string): Promise<void> {
    const s = this.served.get(id);
    if (s?.root.status === 'attached' && s.session.isOpen) {
      void this.release(id, why);
      return;
    }
    await this.release(id, why);
  }

  /**
   * Close our mount fd (if we still hold it), wait for the session to end (ENODEV), abort it if
   * it has not within graceMs, release the lease. Resolves false for an unknown id.
   */
  async release(id: string, why: string, graceMs = this.releaseGraceMs): Promise<boolean> {
    const s = this.served.get(id);
    if (!s) return false;
    if (s.handedOver) return true;
    const first = s.root.status === 'prepared' || s.root.status === 'attached';
    if (first && s.held) {
      // Before the session can be aborted: the holder's copy would keep the connection alive.
      this.dropHeld(s.held.name);
      this.dropMount(s);
      s.held.journal.remove();
    }
    let outcome: ReleaseOutcome | undefined;
    try {
      outcome = await s.root.release(graceMs);
    } catch (err) {
      // The session is gone; only the lease could not be removed.
      if (first)
        this.logger.log('error', `container ${id}: releasing lease ${s.leaseId}: ${(err as Error).message}`);
    }
    if (this.served.get(id) === s) this.served.delete(id);
    if (first && outcome) {
      if (outcome.aborted) {
        this.logger.log(
          'warn',
          `container ${id}: its mount still had users after ${why}; aborting the FUSE session`,
        );
      }
      this.logger.log(
        'info',
        `container ${id}: released (${why}; session ${outcome.end.reason}, lease ${s.leaseId} released)`,
      );
    }
    return true;
  }

  /** Release everything (daemon shutdown): running containers lose their root. */
  async releaseAll(why: string): Promise<void> {
    await Promise.allSettled(this.pending.values()); // a root prepared ahead is served, then released
    await Promise.all([...this.served.keys()].map((id) => this.release(id, why, 0)));
  }
}
