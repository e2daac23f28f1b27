// `strata run -d`: a small sh monitor, in its own session, runs the runtime's foreground `run`
// with the container's output going to container.log, and records the exit status when the
// container ends (and, with --rm, removes the record). A shell costs ~1 ms; a Node monitor would
// cost 80. strata waits for the runtime's pid file (written once the container has started) or
// for the monitor's end, whichever comes first.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { UnavailableError } from '../errors.js';
import type { RunArgs } from './args.js';
import { writeContainer, type RunContext } from './create.js';
import { containerDir, exitCodePath, logPath, namePath } from './paths.js';
import { removeRecord, type ContainerRecord } from './record.js';
import { runtimeCommand, type Runtime } from './runtime.js';

const MONITOR = [
  '"$@"',
  'c=$?',
  'if [ -n "$STRATA_AUTOREMOVE" ]; then',
  '  [ "$(readlink "$STRATA_NAME_LINK")" = "$STRATA_ID" ] && rm -f "$STRATA_NAME_LINK"',
  '  rm -rf "$STRATA_DIR"',
  'elif [ -d "$STRATA_DIR" ]; then',
  // The container's directory is 0700; noclobber (O_EXCL) and a per-shell name still keep the
  // redirection from writing through anything planted at the temp name.
  '  (set -C; echo $c > "$STRATA_EXIT.$$.tmp") && mv -f "$STRATA_EXIT.$$.tmp" "$STRATA_EXIT"',
  'fi',
].join('\n');

/** How long the hooks may take (three of them, 30 s each at most) before we give up waiting. */
const START_TIMEOUT_MS = 100_000;

export function readExitCode(runDir: string, id: string): number | undefined {
  try {
    const n = Number(readFileSync(exitCodePath(runDir, id), 'utf8').trim());
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

function lastLines(path: string, n = 10): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

/** Starts the container in the background; resolves with its record once it runs (or ran). */
export async function runDetached(ctx: RunContext, args: RunArgs, rt: Runtime): Promise<ContainerRecord> {
  const { record, bundle } = await writeContainer(ctx, args, rt);
  const dir = containerDir(ctx.runDir, record.id);
  const pidFile = join(dir, 'init.pid');
  const log = openSync(logPath(ctx.runDir, record.id), 'a', 0o600);
  const [cmd, cmdArgs] = runtimeCommand(rt, ['run', '--bundle', bundle, '--pid-file', pidFile, record.id]);
  let exited = false;
  try {
    const monitor = spawn('/bin/sh', ['-c', MONITOR, 'strata-monitor', cmd, ...cmdArgs], {
      cwd: bundle,
      stdio: ['ignore', log, log],
      detached: true,
      env: {
        ...process.env,
        STRATA_ID: record.id,
        STRATA_DIR: dir,
        STRATA_EXIT: exitCodePath(ctx.runDir, record.id),
        STRATA_NAME_LINK: namePath(ctx.runDir, record.name),
        STRATA_AUTOREMOVE: record.autoRemove ? '1' : '',
      },
    });
    monitor.once('exit', () => (exited = true));
    monitor.unref();
  } finally {
    closeSync(log);
  }

  const until = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (existsSync(pidFile)) return record;
    if (exited || !existsSync(dir)) {
      // The monitor ended: either the container ran and ended already (the pid file was written
      // first, unless --rm removed it all), or the runtime failed before starting it.
      if (!existsSync(dir) || existsSync(pidFile)) return record;
      const why = lastLines(logPath(ctx.runDir, record.id));
      removeRecord(ctx.runDir, record);
      throw new UnavailableError(
        `${rt.name} could not start container ${record.name}${why ? `:\n${why}` : ''}`,
        {
          op: 'run',
          ref: record.name,
        },
      );
    }
    if (Date.now() > until) {
      throw new UnavailableError(
        `container ${record.name} did not start within ${START_TIMEOUT_MS / 1000} s (log: ${logPath(ctx.runDir, record.id)})`,
      );
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}
