// `strata run` in the foreground: the runtime's own `run` (create, start, wait, delete in one
// process) with our stdio, every catchable signal forwarded to it (runc and crun forward them on
// to the container's init), and the container's exit status as ours: runc/crun already return
// 128+N when init died of signal N, as podman does. A runtime that fails before the container's
// process exists (a hook, a mount) is not the container exiting: that is a RuntimeFailedError,
// which `strata run` reports with exit 125 as podman does.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';

import type { RunArgs } from './args.js';
import { createContainer, type RunContext } from './create.js';
import { pidFilePath } from './paths.js';
import { removeRecord, updateRecord } from './record.js';
import { runtimeCommand, runtimeKnows, type Runtime } from './runtime.js';
import { FailedPreconditionError } from '../store/errors.js';

/** The runtime exited before the container's process was started; its own message is on stderr. */
export class RuntimeFailedError extends FailedPreconditionError {}

/** SIGWINCH stays out: with a terminal the runtime is in the foreground process group and gets it
 * from the kernel itself. SIGUSR1 belongs to Node's inspector. */
export const FORWARDED_SIGNALS: NodeJS.Signals[] = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR2',
  'SIGALRM',
  'SIGPIPE',
];

export function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
}

/** Runs the container to its end; resolves with the exit code strata should exit with. */
export async function runForeground(ctx: RunContext, args: RunArgs, rt: Runtime): Promise<number> {
  // Signals that arrive while the bundle is written end the run before anything starts.
  let early: NodeJS.Signals | undefined;
  const onEarly = (sig: NodeJS.Signals): void => {
    early ??= sig;
  };
  for (const sig of FORWARDED_SIGNALS) process.on(sig, onEarly);
  let created;
  try {
    created = await createContainer(ctx, args, rt);
  } finally {
    for (const sig of FORWARDED_SIGNALS) process.off(sig, onEarly);
  }
  const { record, bundle } = created;
  if (early) {
    removeRecord(ctx.runDir, record);
    return exitStatus(null, early);
  }

  const pidFile = pidFilePath(ctx.runDir, record.id);
  const [cmd, cmdArgs] = runtimeCommand(rt, ['run', '--bundle', bundle, '--pid-file', pidFile, record.id]);
  let exitedWithCode = false;
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn(cmd, cmdArgs, {
      cwd: bundle,
      stdio: [args.interactive || args.tty ? 'inherit' : 'ignore', 'inherit', 'inherit'],
      // Without a terminal the runtime gets its own process group, so a ^C reaches the container
      // once (through us) rather than twice. With one, the runtime must stay in the terminal's
      // foreground group to read it; it switches the terminal to raw mode, so ^C is a byte.
      detached: !args.tty,
    });
    const forward = (sig: NodeJS.Signals): void => {
      child.kill(sig);
    };
    for (const sig of FORWARDED_SIGNALS) process.on(sig, forward);
    const done = (): void => {
      for (const sig of FORWARDED_SIGNALS) process.off(sig, forward);
    };
    child.once('error', (err) => {
      done();
      reject(err);
    });
    child.once('exit', (c, s) => {
      done();
      exitedWithCode = c !== null;
      resolve(exitStatus(c, s));
    });
  });

  const started = existsSync(pidFile);
  // `run` deletes the container itself; a runtime killed hard may not have.
  if (runtimeKnows(rt, record.id)) {
    const [dcmd, dargs] = runtimeCommand(rt, ['delete', '--force', record.id]);
    spawnSync(dcmd, dargs, { stdio: 'ignore' });
  }
  if (record.autoRemove) removeRecord(ctx.runDir, record);
  else
    updateRecord(ctx.runDir, {
      ...record,
      ownerPid: undefined,
      exitCode: code,
      finishedAt: new Date().toISOString(),
    });
  // A signal (ours, forwarded) keeps its 128+N: the user stopped it, the runtime did not fail.
  if (code !== 0 && exitedWithCode && !started) {
    throw new RuntimeFailedError(
      `container ${record.name} did not start: ${rt.name} failed with exit code ${code} (its message is above)`,
      { op: 'run' },
    );
  }
  return code;
}
