// strata stop [-t SECONDS] NAME|ID...
import type { Argv, CommandModule } from 'yargs';

import { resolveRunDir } from '../run/paths.js';
import { stopContainer } from '../run/stop.js';
import type { GlobalArgs } from './context.js';

/** What `stop` and `rm` share: the container references and where their records are. */
export interface ContainersArgs extends GlobalArgs {
  containers: string[];
  'run-dir'?: string;
}

interface StopArgs extends ContainersArgs {
  time: number;
}

export function containersBuilder(y: Argv<GlobalArgs>): Argv<ContainersArgs> {
  return y
    .positional('containers', { type: 'string', array: true, demandOption: true, describe: 'names or ids' })
    .option('run-dir', { type: 'string', describe: 'container records ($STRATA_RUN_DIR, /run/strata)' });
}

/** Runs `action` on each container in turn, printing its reference once done. All are attempted;
 * the first failure is thrown at the end (so it decides the exit code), and with more than one
 * container every failure is printed as it happens. */
export async function forEachContainer(
  argv: ContainersArgs,
  action: (runDir: string, ref: string) => Promise<unknown>,
): Promise<void> {
  const runDir = resolveRunDir(argv['run-dir']);
  let failure: unknown;
  for (const ref of argv.containers) {
    try {
      await action(runDir, ref);
      process.stdout.write(`${ref}\n`);
    } catch (err) {
      failure ??= err;
      if (argv.containers.length > 1) process.stderr.write(`strata: ${(err as Error).message}\n`);
    }
  }
  if (failure) throw failure;
}

export const stopCommand: CommandModule<GlobalArgs, StopArgs> = {
  command: 'stop <containers..>',
  describe: "stop containers: the image's StopSignal (default SIGTERM), SIGKILL after the timeout",
  builder: (y: Argv<GlobalArgs>) =>
    containersBuilder(y).option('time', {
      alias: 't',
      type: 'number',
      default: 10,
      describe: 'seconds to wait before SIGKILL',
    }),
  handler: (argv) => forEachContainer(argv, (runDir, ref) => stopContainer(runDir, ref, argv.time)),
};
