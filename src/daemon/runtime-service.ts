// The daemon's side of strata-runtime (native/runtime/strata-runtime.c), the runc-compatible CLI
// for `podman --runtime` and runc's other drivers. On `create` and `run` the executable asks,
// over the run protocol (src/run/protocol.ts), "runtime" [version, verb, id, bundle]; this
// decides, with all the policy here:
//   - which image the bundle runs: an org.strata.image annotation in its config.json, else
//     containerd CRI's io.kubernetes.cri.image-name (a reference the store parses), else
//     containers/storage's record of the container (podman's bundle is
//     <graphroot>/<driver>-containers/<id>/userdata; containers.json beside the container
//     directories names the image ID, the sha256 of the image config, which strata's image
//     records keep as configDigest);
//   - an image the store holds: config.json is rewritten (root.path becomes an empty directory in
//     the bundle, the strata createContainer hook goes first in its stage; nothing else changes),
//     the root is prepared ahead as `strata run` does, and the answer is "serve";
//   - anything else (no image known, one the store lacks, a bundle the runtime will refuse
//     itself): "pass" with the reason, and the runtime runs the bundle unchanged.
// A root prepared for a runtime that ends without attaching it (create failed before its
// createContainer hook) is released when that process ends: the executable's pid (SO_PEERCRED)
// is the runtime's, as it execs it; the watch is that root's guard (containers.ts), so it never
// touches a later root of the same id (podman's restart). An attached root ends with its
// container's mount namespace. After each answer the daemon publishes the config digests its
// store holds (publishHeldImages): the executable passes a podman container of any other image
// through without asking.
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import type { Socket } from 'node:net';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';

import { NATIVE_CONTRACT } from '../contract/generated/native-contract.js';
import { InvalidArgumentError, NotFoundError, StrataError } from '../errors.js';
import { hookExecutable } from '../executables.js';
import { decodeRunMessages, encodeExit, encodeRunMessage, type RunMessage } from '../run/protocol.js';
import type { ContainersStorageContainers } from '../schema/generated/containers-storage-containers.js';
import type { RuntimeConfig } from '../schema/generated/runtime-config.js';
import { parseAndValidate } from '../schema/validate.js';
import {
  CRI_CONTAINER_TYPE_ANNOTATION,
  CRI_IMAGE_NAME_ANNOTATION,
  IMAGE_ANNOTATION,
} from '../spec/annotations.js';
import { loadBundleConfig } from '../spec/bundle-config.js';
import { isContainerId } from '../spec/container-id.js';
import { withStrataHookFirst } from '../spec/hook-injection.js';
import { writeFileAtomicSync } from '../store/atomic.js';
import { liveStartTime } from '../store/holder.js';
import { listRecordDigests, readRecord, resolveImageRecord } from '../store/records.js';
import type { ImageRecord } from '../schema/generated/image-record.js';
import type { ContainerManager } from './containers.js';
import type { Logger } from './log.js';
import { importerFor } from './runtime-import.js';

const RT = NATIVE_CONTRACT.runtime;
/** containers.json holds every container of a podman store: far below this in practice. */
const MAX_CONTAINERS_JSON = 64 * 1024 * 1024;

export interface RuntimeServiceOptions {
  storeRoot: string;
  socketPath: string;
  manager: ContainerManager;
  logger: Logger;
}

export interface RuntimeRequest {
  verb: 'create' | 'run';
  id: string;
  bundle: string;
  /** The user opted in to importing an image strata lacks from podman's storage on first use. */
  importOnFirstUse?: boolean;
}

export type RuntimeDecision =
  | { kind: 'serve'; note: string }
  | { kind: 'pass'; reason: string }
  | { kind: 'exit'; code: number; message: string };

/** Does this run message open a strata-runtime conversation? */
export function isRuntimeRequest(head: Buffer): boolean {
  return head.subarray(0, 8).toString('latin1') === 'runtime ';
}

/** The request's fields, or a reason to refuse it. */
export function parseRuntimeRequest(msg: RunMessage): RuntimeRequest | string {
  const [version, verb, id, bundle, options] = msg.fields;
  if (msg.verb !== 'runtime' || msg.fields.length < 4 || msg.fields.length > 5)
    return 'malformed runtime request';
  if (version !== RT.version) {
    return `this daemon speaks runtime protocol ${RT.version}, strata-runtime ${JSON.stringify(version)}: restart the daemon after an upgrade`;
  }
  if (verb !== 'create' && verb !== 'run') return `unknown runtime verb ${JSON.stringify(verb)}`;
  if (!isAbsolute(bundle)) return `the bundle path ${JSON.stringify(bundle)} is not absolute`;
  // The optional fifth field: strata-runtime's options, only those the user set.
  if (options !== undefined && options !== RT.importFirstUse) {
    return `unknown runtime option ${JSON.stringify(options)} (this daemon knows ${JSON.stringify(RT.importFirstUse)})`;
  }
  return options === RT.importFirstUse ? { verb, id, bundle, importOnFirstUse: true } : { verb, id, bundle };
}

/**
 * podman's image ID for container `id` from containers/storage's record, or undefined when the
 * bundle is not in a containers/storage layout or the record does not name one.
 */
export function containersStorageImage(bundle: string, id: string): string | undefined {
  if (basename(bundle) !== 'userdata' || basename(dirname(bundle)) !== id) return undefined;
  const file = join(dirname(dirname(bundle)), 'containers.json');
  let text: string;
  try {
    if (statSync(file).size > MAX_CONTAINERS_JSON) return undefined;
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const records = parseAndValidate<ContainersStorageContainers>('containers-storage-containers', text, file);
  const image = records.find((r) => r.id === id)?.image;
  return image && /^[0-9a-f]{64}$/.test(image) ? `sha256:${image}` : undefined;
}

/** The manifest digest of the stored image whose config digest is `configDigest`, if any. */
export async function imageByConfig(storeRoot: string, configDigest: string): Promise<string | undefined> {
  return (await heldImages(storeRoot)).byConfig.get(configDigest);
}

/** The store's images by config digest, as of `stamp` (the images/ directory's mtime in ns). */
interface HeldImages {
  stamp: bigint;
  byConfig: Map<string, string>;
}

/** A stamp this old can no longer share its (coarse, ~4-10 ms) mtime with a later change. */
const SETTLED_NS = 100_000_000n;
const heldCache = new Map<string, HeldImages>();
/** What each held-images file was last written with. */
const published = new Map<string, string>();

/**
 * The images the store holds, by config digest. Cached while the images/ directory's mtime stays
 * (every record is written by a rename into it, or removed from it); `settled`: that mtime is
 * old enough that no change can have shared it, so the list may be trusted as of it.
 */
export async function heldImages(storeRoot: string): Promise<HeldImages & { settled: boolean }> {
  const dir = join(storeRoot, 'images');
  const mtime = (): bigint => statSync(dir, { bigint: true }).mtimeNs;
  const isSettled = (stamp: bigint): boolean => BigInt(Date.now()) * 1_000_000n - stamp > SETTLED_NS;
  const stamp = mtime();
  const cached = heldCache.get(storeRoot);
  if (cached && cached.stamp === stamp && isSettled(stamp)) return { ...cached, settled: true };
  const byConfig = new Map<string, string>();
  for (const digest of await listRecordDigests(storeRoot)) {
    const record = await readRecord(storeRoot, digest).catch(() => undefined);
    if (record) byConfig.set(record.configDigest, record.manifestDigest);
  }
  const settled = mtime() === stamp && isSettled(stamp);
  if (settled) heldCache.set(storeRoot, { stamp, byConfig });
  return { stamp, byConfig, settled };
}

/**
 * Publishes, beside the socket, which images the store holds (the contract's runtime
 * heldImages*): strata-runtime reads it to pass a podman container of an image strata lacks
 * through without a round trip here, while the images/ directory's mtime and the socket's inode
 * are what the file says. The policy stays here: the file only ever answers "not held", the
 * answer that runs the bundle unchanged; anything else still asks. Rewritten only when the list
 * changed; an unsettled list is not published (the executable then asks).
 */
export async function publishHeldImages(storeRoot: string, socketPath: string): Promise<void> {
  const held = await heldImages(storeRoot);
  if (!held.settled) return;
  const socketIno = statSync(socketPath, { bigint: true }).ino;
  const file = socketPath + RT.heldImagesSuffix;
  const sec = held.stamp / 1_000_000_000n;
  const nsec = held.stamp % 1_000_000_000n;
  const digests = [...held.byConfig.keys()]
    .filter((d) => /^sha256:[0-9a-f]{64}$/.test(d))
    .map((d) => d.slice('sha256:'.length))
    .sort();
  const text =
    `${RT.heldImagesMagic}\n${join(storeRoot, 'images')}\n${sec} ${nsec}\n${socketIno}\n` +
    digests.map((d) => `${d}\n`).join('');
  // Unchanged since written (a file someone altered is written again).
  const st = statOrUndefined(file);
  if (published.get(file) === text && st?.size === text.length && (st.mode & 0o777) === 0o644) return;
  writeFileAtomicSync(file, text, { mode: 0o644, durable: false });
  published.set(file, text);
}

/** Longer than any image reference the store names. */
const MAX_CRI_IMAGE_NAME = 1024;

/**
 * The stored image a CRI container's image-name annotation names, or why not (the container then
 * runs on containerd's own rootfs, as without strata). Only a reference or digest, as the store
 * parses them (src/store/refs.ts): never a path.
 */
export async function criImageRecord(storeRoot: string, name: string): Promise<ImageRecord | string> {
  const what = `image ${JSON.stringify(name.slice(0, 200))} (annotation ${CRI_IMAGE_NAME_ANNOTATION})`;
  if (name.length === 0 || name.length > MAX_CRI_IMAGE_NAME) return `${what} is empty or too long`;
  // repo@sha256:<hex>, as the kubelet names an image pinned by digest: the digest is the image.
  const pinned = /^[^@]+@(sha256:[0-9a-f]{64})$/.exec(name)?.[1];
  try {
    return await resolveImageRecord(storeRoot, pinned ?? name);
  } catch (err) {
    if (err instanceof NotFoundError) return `${what} is not in the strata store ${storeRoot}`;
    if (err instanceof InvalidArgumentError) return `${what} is not an image reference: ${err.message}`;
    throw err;
  }
}

/** `config` as strata serves it: root.path an empty directory, the strata hook first at createContainer. */
export function servedConfig(
  config: RuntimeConfig,
  rootDir: string,
  hookPath: string,
  socketPath: string,
): RuntimeConfig {
  return {
    ...config,
    root: { ...config.root, path: rootDir },
    hooks: withStrataHookFirst(config.hooks, { hookPath, socketPath }, 'createContainer'),
  };
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** The decision for one request; prepares the root when it serves. */
export async function decideRuntime(
  req: RuntimeRequest,
  peerPid: number,
  opts: RuntimeServiceOptions,
): Promise<RuntimeDecision> {
  const { id, bundle } = req;
  // Read now: the process that asked, even if it ends while the root is prepared.
  const peerStart = liveStartTime(peerPid);
  // The runtime refuses these in its own words (runc's, when it is runc).
  if (!isContainerId(id)) return { kind: 'pass', reason: `${JSON.stringify(id)} is not a container id` };
  let config: RuntimeConfig;
  try {
    config = loadBundleConfig(bundle);
  } catch (err) {
    return { kind: 'pass', reason: (err as Error).message };
  }
  if (!config.root?.path) return { kind: 'pass', reason: `config.json of bundle ${bundle} has no root.path` };

  let ref = config.annotations?.[IMAGE_ANNOTATION];
  let source = `annotation ${IMAGE_ANNOTATION}`;
  const criImage = config.annotations?.[CRI_IMAGE_NAME_ANNOTATION];
  if (!ref && criImage !== undefined && config.annotations?.[CRI_CONTAINER_TYPE_ANNOTATION] !== 'sandbox') {
    // containerd's CRI (a runc shim with BinaryName = strata-runtime): the kubelet's image name.
    const found = await criImageRecord(opts.storeRoot, criImage);
    if (typeof found === 'string') return { kind: 'pass', reason: found };
    ref = found.manifestDigest;
    source = `annotation ${CRI_IMAGE_NAME_ANNOTATION}=${criImage}`;
  }
  if (!ref) {
    let imageId: string | undefined;
    try {
      imageId = containersStorageImage(bundle, id);
    } catch (err) {
      return { kind: 'pass', reason: `containers/storage's record is unreadable: ${(err as Error).message}` };
    }
    if (!imageId) {
      return {
        kind: 'pass',
        reason: `no image known for it (no ${IMAGE_ANNOTATION} annotation, no containers/storage record)`,
      };
    }
    ref = await imageByConfig(opts.storeRoot, imageId);
    source = `containers/storage image ${imageId}`;
    if (!ref && req.importOnFirstUse) {
      const got = await importerFor(opts.storeRoot, opts.logger).importFor(
        dirname(dirname(dirname(bundle))),
        imageId.slice('sha256:'.length),
        `container ${id}`,
      );
      if (got.kind !== 'imported') return { kind: 'pass', reason: got.message };
      ref = got.ref;
      source += `, imported on first use in ${got.ms} ms`;
    }
    if (!ref) {
      return {
        kind: 'pass',
        reason: `image ${imageId} is not in the strata store ${opts.storeRoot} (import it with \`strata image import containers-storage:${imageId.slice(7, 19)}\`, or set \`import = ${RT.importFirstUse}\` in ${RT.confDefault})`,
      };
    }
  }

  const rootDir = join(bundle, RT.rootDir);
  mkdirSync(rootDir, { recursive: true, mode: 0o755 });
  const served = servedConfig(config, rootDir, hookExecutable(), opts.socketPath);
  const mode = statSync(join(bundle, 'config.json')).mode & 0o777;
  // Not durable: podman writes config.json anew for every start, containerd's bundles are
  // temporary; a crash just means the next create rewrites it.
  writeFileAtomicSync(join(bundle, 'config.json'), JSON.stringify(served), { mode, durable: false });

  // The container's writes live in its bundle, as podman keeps them in its own layer: they
  // survive a stop and start of the same container and go when the container is removed.
  // A new layer's root (which the overlay's "/" shows) takes the mode and owner of the root the
  // runtime would have used (podman's shows 0555), else of the image's root.
  const upperDir = join(bundle, RT.upperDir);
  let fromLower = false;
  if (mkdirSync(upperDir, { recursive: true, mode: 0o755 }) !== undefined) {
    const theirs = statOrUndefined(resolve(bundle, config.root.path));
    if (theirs?.isDirectory()) {
      chownSync(upperDir, theirs.uid, theirs.gid);
      chmodSync(upperDir, theirs.mode & 0o7777);
    } else fromLower = true;
  }
  const prepared = opts.manager.prepareAhead(id, bundle, served, {
    ref,
    overlay: { upperDir, upperRootFromLower: fromLower },
    runtime: { pid: peerPid, startTime: peerStart },
  });
  // The createContainer hook reports it to the runtime; the log keeps it too.
  prepared.catch((err: unknown) =>
    opts.logger.log('warn', `container ${id}: preparing its root failed: ${(err as Error).message}`),
  );
  return { kind: 'serve', note: `container ${id}: serving image ${ref} (${source}) from the strata store` };
}

/** Serves one strata-runtime connection whose first bytes (`head`) are a runtime message. */
export function serveRuntimeConnection(
  socket: Socket,
  head: Buffer,
  peerPid: number,
  opts: RuntimeServiceOptions,
): void {
  let buf = head;
  let done = false;
  const answer = (data: Buffer): void => {
    done = true;
    if (!socket.destroyed) socket.end(data);
  };
  const take = (): void => {
    if (done) return;
    let messages: RunMessage[];
    try {
      ({ messages, rest: buf } = decodeRunMessages(buf));
    } catch (err) {
      answer(encodeExit(RT.failed, `strata-runtime: ${(err as Error).message}`));
      return;
    }
    const msg = messages[0];
    if (!msg) return;
    done = true;
    const req = parseRuntimeRequest(msg);
    if (typeof req === 'string') {
      answer(encodeExit(RT.failed, `strata-runtime: ${req}`));
      return;
    }
    decideRuntime(req, peerPid, opts).then(
      (d) => {
        opts.logger.log(
          'info',
          d.kind === 'serve'
            ? d.note
            : `container ${req.id}: ${d.kind === 'pass' ? `pass-through: ${d.reason}` : d.message}`,
        );
        answer(
          d.kind === 'serve'
            ? encodeRunMessage('serve', [d.note])
            : d.kind === 'pass'
              ? encodeRunMessage('pass', [d.reason])
              : encodeExit(d.code, d.message),
        );

        // After the answer: the next container of an image the store lacks need not ask.
        publishHeldImages(opts.storeRoot, opts.socketPath).catch((err: unknown) =>
          opts.logger.log('warn', `publishing the held images for strata-runtime: ${(err as Error).message}`),
        );
      },
      (err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        opts.logger.log(
          err instanceof StrataError ? 'warn' : 'error',
          `strata-runtime ${req.verb} ${req.id}: ${message}`,
        );
        answer(encodeExit(RT.failed, `strata-runtime: container ${req.id}: ${message}`));
      },
    );
  };
  socket.on('data', (data: Buffer) => {
    buf = Buffer.concat([buf, data]);
    take();
  });
  take();
}
