// Creating a container for `strata run`: a fresh id, its name reserved, the bundle written by the
// same writer as `strata bundle` (hooks + org.strata.image annotation), and the record. Any
// failure removes what was made, so a bad image or option leaves no record and no name behind.
import { writeBundle, type BundleOptions } from '../spec/bundle.js';
import { daemonArgv, hookExecutable } from '../executables.js';
import { STOP_SIGNAL_ANNOTATION } from '../spec/defaults.js';
import type { RuntimeConfig } from '../schema/generated/runtime-config.js';
import { checkBindSources, parseMount, parseVolume } from '../spec/options.js';
import type { RunArgs } from './args.js';
import { bundleDir } from './paths.js';
import {
  checkName,
  newContainerId,
  removeRecord,
  reserveGeneratedName,
  reserveName,
  writeRecord,
  type ContainerRecord,
} from './record.js';
import type { Runtime } from './runtime.js';

export interface RunContext {
  storeRoot: string;
  socketPath: string;
  runDir: string;
}

export interface CreateOptions {
  /** The process that waits for a foreground container (the front end); omitted for -d. */
  ownerPid?: number;
  /** The environment of the user's command, for `-e NAME` without a value. Default process.env. */
  hostEnv?: Record<string, string | undefined>;
  /** The daemon prepares the root and watches the runtime (src/spec/bundle.ts rootFromDaemon). */
  rootFromDaemon?: boolean;
  /** The daemon's cache of mapped tree indexes (src/spec/bundle.ts indexes). */
  indexes?: BundleOptions['indexes'];
}

export interface CreatedContainer {
  record: ContainerRecord;
  bundle: string;
  config: RuntimeConfig;
  /** The image's tree index, for what the daemon later asks of the image. */
  indexDigest: string;
}

/** Writes a new container of `strata run`: its name reserved, its bundle and its record. The
 * runtime's own create step (and the daemon's createContainer hook) come later. */
export async function writeContainer(
  ctx: RunContext,
  args: RunArgs,
  rt: Runtime,
  opts: CreateOptions = {},
): Promise<CreatedContainer> {
  const id = newContainerId();
  const name = args.name !== undefined ? checkName(args.name) : undefined;
  const mounts = checkBindSources([...args.volumes.map(parseVolume), ...args.mountSpecs.map(parseMount)]);
  if (name !== undefined) reserveName(ctx.runDir, name, id);
  const reserved = name ?? reserveGeneratedName(ctx.runDir, id);
  try {
    const bundle = bundleDir(ctx.runDir, id);
    const result = await writeBundle({
      storeRoot: ctx.storeRoot,
      image: args.image,
      dir: bundle,
      socketPath: ctx.socketPath,
      hookPath: hookExecutable(),
      daemonArgv: daemonArgv({ storeRoot: ctx.storeRoot, socketPath: ctx.socketPath }),
      rootFromDaemon: opts.rootFromDaemon,
      indexes: opts.indexes,
      durable: false, // run-dir state: see BundleOptions.durable
      run: { ...args, hostEnv: opts.hostEnv, containerId: id, mounts, runtime: rt.name },
    });
    const record: ContainerRecord = {
      id,
      name: reserved,
      image: args.image,
      imageDigest: result.manifestDigest,
      runtime: rt.name,
      command: result.config.process?.args ?? [],
      created: new Date().toISOString(),
      detached: args.detach,
      autoRemove: args.rm,
      stopSignal: result.config.annotations?.[STOP_SIGNAL_ANNOTATION] ?? 'SIGTERM',
      ...(opts.ownerPid !== undefined ? { ownerPid: opts.ownerPid } : {}),
    };
    writeRecord(ctx.runDir, record);
    return { record, bundle, config: result.config, indexDigest: result.indexDigest };
  } catch (err) {
    removeRecord(ctx.runDir, { id, name: reserved });
    throw err;
  }
}
