// The image of a containerd task, served from strata's store: on Create the Task service asks
// which image the container was made from (CRI's io.kubernetes.cri.image-name annotation in the
// bundle, else containerd's container record) and imports it from containerd's content store when
// strata does not hold it yet (src/store/import-foreign.ts: every blob verified, objects strata
// already has are not written again). Once imported, the same (name, target) costs one record
// read on every later Create: the manifest digest is remembered, and the record checked.
//
// Never by strata's name alone: containerd may have re-tagged the name (a new pull of :latest)
// since strata took it, and the task must run what containerd holds under the name now, so the
// name's target descriptor is asked of containerd on every Create (Images.Get over its gRPC
// socket, containerd-grpc.ts, ~1 ms) and handed to importFromContainerd. containerd's root (where
// its content store is) is asked once per address: the content plugin exports it (`ctr plugins ls
// -d id==content`).
//
// Concurrency: one import per (containerd root, namespace, name, target) at a time, the tasks
// creating from it wait for the same one; at most MAX_IMPORTS imports run at once and at most
// MAX_WAITING wait for a turn (more is refused: Unavailable). docs/architecture.md#containerd-shim.
import { execa } from 'execa';

import { FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError } from '../errors.js';
import { importFromContainerd } from '../store/import-foreign.js';
import { resolveImageRecord } from '../store/records.js';
import { openStore, type Store } from '../store/store.js';
import { ContainerdGrpc, type ImageTarget } from './containerd-grpc.js';

/** Imports that run at once (each reads and hashes every blob: CPU and disk bound). */
export const MAX_IMPORTS = 2;
/** Creates that may wait for an import slot; more are refused rather than queued without end. */
export const MAX_WAITING = 64;
const CTR_TIMEOUT_MS = 10_000;
const MAX_IMAGE_NAME = 512;
/** Imports remembered (key -> manifest digest), so a Create of a known image skips importImage. */
const MAX_KNOWN = 1024;

export interface TaskImageRequest {
  /** containerd's gRPC socket (the shim's -address). */
  address: string;
  namespace: string;
  id: string;
  /** CRI's io.kubernetes.cri.image-name from the bundle, when there: containerd is not asked. */
  imageName?: string;
}

export interface TaskImage {
  /** The image's name in containerd (and now in strata). */
  name: string;
  /** The manifest digest strata serves it by. */
  digest: string;
  /** false when strata held it complete already (only the record was checked). */
  imported: boolean;
}

/** A name containerd could hold: bounded, printable, no whitespace (it goes into ctr's argv). */
export function checkImageName(name: string): string {
  if (name.length === 0 || name.length > MAX_IMAGE_NAME || !/^[\x21-\x7e]+$/.test(name)) {
    throw new InvalidArgumentError(`containerd image name ${JSON.stringify(name.slice(0, 80))} is not valid`);
  }
  return name;
}

/** containerd's root from `ctr plugins ls -d id==content` output (its content plugin's export). */
export function parseContentRoot(stdout: string): string | undefined {
  const m = /^\s*root\s+(\/\S+)\/io\.containerd\.content\.v1\.content\s*$/m.exec(stdout);
  return m ? m[1] : undefined;
}

export class ContainerdImages {
  private store: Promise<Store> | undefined;
  private readonly roots = new Map<string, Promise<string>>();
  private readonly clients = new Map<string, ContainerdGrpc>();
  private readonly inflight = new Map<string, Promise<TaskImage>>();
  /** (root, namespace, name, target) -> the manifest digest an import of it gave (bounded). */
  private readonly imported = new Map<string, string>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly opts: {
      storeRoot: string;
      /** One line per image imported (not per task waiting for it). */
      log?: (message: string) => void;
      maxImports?: number;
      maxWaiting?: number;
    },
  ) {}

  /**
   * The image the task's container was made from, in strata's store (imported now if needed).
   * NotFoundError when containerd names no image for it (`ctr run --rootfs`); other errors say
   * why the image could not be had (containerd not answering, a blob missing or corrupt).
   */
  async forTask(req: TaskImageRequest): Promise<TaskImage> {
    // The root first: it also tells quickly (2 s) when containerd does not answer.
    const root = await this.containerdRoot(req.address);
    const grpc = this.client(req.address);
    const name = req.imageName || (await grpc.containerImage(req.namespace, req.id));
    if (!name) {
      throw new NotFoundError(`containerd container ${req.id} (namespace ${req.namespace}) names no image`, {
        op: 'import',
        ref: req.id,
      });
    }
    checkImageName(name);
    const target = await grpc.imageTarget(req.namespace, name);
    const key = `${root}\0${req.namespace}\0${name}\0${target.digest}`;
    // Imported before from the same target: one record read (~1 ms) instead of importImage's
    // look at containerd's blobs and the store (20-80 ms at load 20). A record gone since (gc,
    // `strata rmi`) is imported again.
    const known = this.imported.get(key);
    if (known) {
      const record = await resolveImageRecord(this.opts.storeRoot, known).catch(() => undefined);
      if (record?.manifestDigest === known) return { name, digest: known, imported: false };
      this.imported.delete(key);
    }
    let p = this.inflight.get(key);
    if (!p) {
      p = this.importOnce(root, req.address, req.namespace, name, target)
        .then((image) => {
          this.imported.delete(key);
          this.imported.set(key, image.digest);
          while (this.imported.size > MAX_KNOWN)
            this.imported.delete(this.imported.keys().next().value as string);
          return image;
        })
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private client(address: string): ContainerdGrpc {
    let c = this.clients.get(address);
    if (!c) {
      c = new ContainerdGrpc(address);
      this.clients.set(address, c);
    }
    return c;
  }

  /** Closes the gRPC sessions. */
  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private async importOnce(
    root: string,
    address: string,
    namespace: string,
    name: string,
    target: ImageTarget,
  ): Promise<TaskImage> {
    await this.slot(name);
    try {
      this.store ??= openStore(this.opts.storeRoot);
      const store = await this.store;
      const started = Date.now();
      const r = await importFromContainerd(store, name, { containerd: { root, address, namespace }, target });
      if (!r.existing) {
        this.opts.log?.(
          `imported ${name} from containerd's content store (${root}, namespace ${namespace}): ` +
            `${r.objectsWritten} objects written, ${r.objectsExisting} already held, ${Date.now() - started} ms`,
        );
      }
      return { name, digest: r.record.manifestDigest, imported: !r.existing };
    } finally {
      this.release();
    }
  }

  private async slot(name: string): Promise<void> {
    if (this.running < (this.opts.maxImports ?? MAX_IMPORTS)) {
      this.running++;
      return;
    }
    if (this.waiting.length >= (this.opts.maxWaiting ?? MAX_WAITING)) {
      throw new UnavailableError(
        `importing ${name} from containerd: ${this.waiting.length} imports already wait for a turn`,
        { op: 'import', ref: name },
      );
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }

  /** containerd's root, asked of containerd once per address. */
  private containerdRoot(address: string): Promise<string> {
    let p = this.roots.get(address);
    if (!p) {
      p = askRoot(address);
      this.roots.set(address, p);
      p.catch(() => this.roots.delete(address));
    }
    return p;
  }
}

async function askRoot(address: string): Promise<string> {
  let stdout: string;
  try {
    stdout = (
      await execa('ctr', ['-a', address, '--connect-timeout', '2s', 'plugins', 'ls', '-d', 'id==content'], {
        timeout: CTR_TIMEOUT_MS,
        maxBuffer: 1 << 20,
        stdin: 'ignore',
      })
    ).stdout;
  } catch (err) {
    const e = err as { code?: string; stderr?: string; shortMessage?: string };
    if (e.code === 'ENOENT')
      throw new FailedPreconditionError("ctr (containerd's client) is not installed", { cause: err });
    throw new UnavailableError(
      `containerd at ${address} did not list its plugins: ${(e.stderr ?? '').trim() || e.shortMessage}`,
      { op: 'import', path: address, cause: err },
    );
  }
  const root = parseContentRoot(stdout);
  if (!root) {
    throw new NotFoundError(`containerd at ${address} exports no content store root`, {
      op: 'import',
      path: address,
    });
  }
  return root;
}
