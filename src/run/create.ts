// Creating a container for `strata run`: a fresh id, its name reserved, the bundle written by the
// same writer as `strata bundle` (hooks + org.strata.image annotation), and the record. Any
// failure removes what was made, so a bad image or option leaves no record and no name behind.
import { writeBundle } from '../../hooks/bundle.js';
import { daemonArgv, hookExecutable } from '../../hooks/paths.js';
import { STOP_SIGNAL_ANNOTATION } from '../spec/defaults.js';
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

export interface CreatedContainer {
  record: ContainerRecord;
  bundle: string;
}

export async function createContainer(
  ctx: RunContext,
  args: RunArgs,
  rt: Runtime,
): Promise<CreatedContainer> {
  const id = newContainerId();
  const name = args.name !== undefined ? checkName(args.name) : undefined;
  const mounts = checkBindSources([...args.volumes.map(parseVolume), ...args.mounts.map(parseMount)]);
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
      run: {
        command: args.command.length ? args.command : undefined,
        entrypoint:
          args.entrypoint === undefined ? undefined : args.entrypoint === '' ? [] : [args.entrypoint],
        env: args.env,
        workdir: args.workdir,
        user: args.user,
        hostname: args.hostname,
        containerId: id,
        readOnly: args.readOnly,
        mounts,
        network: args.network,
        capAdd: args.capAdd,
        capDrop: args.capDrop,
        tty: args.tty,
      },
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
      ...(args.detach ? {} : { ownerPid: process.pid }),
    };
    writeRecord(ctx.runDir, record);
    return { record, bundle };
  } catch (err) {
    removeRecord(ctx.runDir, { id, name: reserved });
    throw err;
  }
}
