// `strata run` in the foreground, the daemon's half: create the container (bundle + record) and
// say how to start its runtime; when the front end reports how the runtime ended, clean up and
// decide strata's exit code. The runtime's own `run` (create, start, wait, delete in one process)
// is started by the front end, so it has the user's terminal, process group and signals.
// runc/crun already return 128+N when init died of signal N, as podman does. A runtime that fails
// before the container's process exists (a hook, a mount) is not the container exiting: strata
// then exits 125 with a message, as podman does.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

import type { ExecInstruction, RuntimeEnd } from './protocol.js';
import type { RunArgs } from './args.js';
import { writeContainer, type CreateOptions, type CreatedContainer, type RunContext } from './create.js';
import type { CommandProblem } from './command-check.js';
import { RUN_FAILED } from './exit-codes.js';
import { pidFilePath } from './paths.js';
import { detachRecord, removeRecord, updateRecord, type ContainerRecord } from './record.js';
import { runtimeArgv, runtimeCommand, runtimeKnows, type Runtime } from './runtime.js';

export interface ForegroundStart extends CreatedContainer {
  exec: ExecInstruction;
}

export async function startForeground(
  ctx: RunContext,
  args: RunArgs,
  rt: Runtime,
  opts: CreateOptions & { mntns?: string },
): Promise<ForegroundStart> {
  const created = await writeContainer(ctx, args, rt, { ...opts, rootFromDaemon: true });
  const pidFile = pidFilePath(ctx.runDir, created.record.id);
  return {
    ...created,
    exec: {
      argv: runtimeArgv(rt, ['run', '--bundle', created.bundle, '--pid-file', pidFile, created.record.id]),
      cwd: created.bundle,
      stdin: args.interactive || args.tty ? 'inherit' : 'null',
      // Without a terminal the runtime gets its own process group, so a ^C reaches the container
      // once (through the front end) rather than twice. With one, the runtime must stay in the
      // terminal's foreground group to read it; it switches the terminal to raw mode, so ^C is a byte.
      pgrp: args.tty ? 'same' : 'new',
      mntns: opts.mntns,
      pidFile,
      id: created.record.id,
      runDir: ctx.runDir,
    },
  };
}

/** The runtime's end as a process exit code: its code, or 128+N for a signal. */
export function endCode(end: RuntimeEnd): number {
  return end.kind === 'code' ? end.value : 128 + end.value;
}

function deleteLeftovers(rt: Runtime, id: string): Promise<void> {
  // `run` deletes the container itself; a runtime killed hard may not have.
  if (!runtimeKnows(rt, id)) return Promise.resolve();
  const [cmd, args] = runtimeCommand(rt, ['delete', '--force', id]);
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: 'ignore' });
    child.once('error', () => resolve());
    child.once('exit', () => resolve());
  });
}

/** Who deletes a `--rm` container's directory behind the answer (the daemon's BackgroundRemovals). */
export interface DeferredRemovals {
  /** On the run dir's filesystem; the directory is moved here first. */
  readonly trashDir: string;
  add(dir: string): void;
}

/** What strata itself knows about a container that did not start. */
export interface StartFailure {
  /** What went wrong on strata's side (the root could not be prepared). */
  why?: string;
  /** The container's command judged from the image (127/126), asked only when it did not start. */
  commandProblem?: () => CommandProblem | undefined;
}

/**
 * After the runtime ended (`end`; undefined when the front end vanished and nobody saw the status):
 * delete what the runtime left, update or remove the record. Resolves with strata's exit code and
 * message: the container's own, or for one that never started podman's 127/126 when the image
 * lacks its command, else 125 with the reason.
 */
export async function finishForeground(
  ctx: RunContext,
  rt: Runtime,
  record: ContainerRecord,
  end: RuntimeEnd | undefined,
  failure: StartFailure = {},
  opts: {
    /** Deletes a removed container's directory after the answer (moved into its trashDir by
     * detachRecord); without it the directory is deleted before finishForeground resolves. */
    removeLater?: DeferredRemovals;
  } = {},
): Promise<{ code: number; message: string }> {
  const started = existsSync(pidFilePath(ctx.runDir, record.id));
  await deleteLeftovers(rt, record.id);
  const result = exitFor(record, rt, end, started, failure);
  if (record.autoRemove || end?.kind === 'early') {
    if (opts.removeLater) {
      const dir = detachRecord(ctx.runDir, record, opts.removeLater.trashDir);
      if (dir) opts.removeLater.add(dir);
    } else removeRecord(ctx.runDir, record);
  } else
    updateRecord(ctx.runDir, {
      ...record,
      ownerPid: undefined,
      exitCode: result.code,
      finishedAt: new Date().toISOString(),
    });
  return result;
}

function exitFor(
  record: ContainerRecord,
  rt: Runtime,
  end: RuntimeEnd | undefined,
  started: boolean,
  failure: StartFailure,
): { code: number; message: string } {
  const code = end ? endCode(end) : RUN_FAILED;
  // A signal (ours, forwarded) keeps its 128+N: the user stopped it, the runtime did not fail.
  if (end?.kind !== 'code' || code === 0 || started) return { code, message: '' };
  const notStarted = `strata: container ${record.name} did not start`;
  const problem = failure.commandProblem?.();
  if (problem) return { code: problem.code, message: `${notStarted}: ${problem.message}` };
  const reason = failure.why ? `: ${failure.why}` : ' (its message is above)';
  return { code: RUN_FAILED, message: `${notStarted}: ${rt.name} failed with exit code ${code}${reason}` };
}
