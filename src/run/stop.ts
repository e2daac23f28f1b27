// `strata stop` and `strata rm`: the image's StopSignal (recorded from the config annotation),
// SIGKILL after the timeout, then waiting until the runtime has let go of the container — the
// process that ran it (`strata run` or the detached monitor) deletes it and records the exit.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

import { FailedPreconditionError } from '../errors.js';
import { containerDir, exitCodePath } from './paths.js';
import { lookupContainer, readRecord, removeRecord, type ContainerRecord } from './record.js';
import { runtimeCommand, runtimeFor, runtimeKnows, type Runtime } from './runtime.js';
import { inspectContainer } from './status.js';

function kill(rt: Runtime, id: string, signal: string): void {
  const [cmd, args] = runtimeCommand(rt, ['kill', id, signal.replace(/^SIG/, '')]);
  // Fails when the container ended meanwhile: what we wanted anyway.
  spawnSync(cmd, args, { stdio: 'ignore' });
}

async function gone(rt: Runtime, id: string, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (!runtimeKnows(rt, id)) return true;
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A detached container's monitor writes its exit code (or, with --rm, removes the directory) once
 * the runtime has exited: removing the directory under it would race with that write. */
async function monitorDone(runDir: string, id: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (existsSync(containerDir(runDir, id)) && !existsSync(exitCodePath(runDir, id))) {
    if (Date.now() >= until) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Stops one container; resolves with its record. A container that is not running is left alone. */
export async function stopContainer(
  runDir: string,
  ref: string,
  timeoutSeconds = 10,
): Promise<ContainerRecord> {
  const id = lookupContainer(runDir, ref);
  const record = readRecord(runDir, id);
  const rt = runtimeFor(runDir, record.runtime);
  if (!runtimeKnows(rt, id)) return record;
  kill(rt, id, record.stopSignal);
  if (!(await gone(rt, id, timeoutSeconds * 1000))) {
    kill(rt, id, 'KILL');
    if (!(await gone(rt, id, 10_000))) {
      throw new FailedPreconditionError(`container ${record.name} did not stop after SIGKILL`, { ref });
    }
  }
  return record;
}

/** Removes one container's record and bundle; a running one only with `force` (SIGKILL first). */
export async function removeContainer(runDir: string, ref: string, force = false): Promise<ContainerRecord> {
  const id = lookupContainer(runDir, ref);
  const info = inspectContainer(runDir, id);
  const rt = runtimeFor(runDir, info.runtime);
  if (info.status !== 'exited' && info.status !== 'unknown') {
    if (!force) {
      throw new FailedPreconditionError(
        `container ${info.name} is ${info.status}: stop it first (strata stop ${info.name}) or use rm -f`,
        { ref },
      );
    }
    if (runtimeKnows(rt, id)) {
      kill(rt, id, 'KILL');
      await gone(rt, id, 10_000);
    }
    if (info.detached) await monitorDone(runDir, id, 5_000);
  }
  if (runtimeKnows(rt, id)) {
    const [cmd, args] = runtimeCommand(rt, ['delete', '--force', id]);
    spawnSync(cmd, args, { stdio: 'ignore' });
  }
  removeRecord(runDir, info);
  return info;
}
