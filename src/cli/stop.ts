// strata stop [-t SECONDS] NAME|ID...
import type { Argv, CommandModule } from 'yargs';

import { resolveRunDir } from '../run/paths.js';
import { stopContainer } from '../run/stop.js';
import type { GlobalArgs } from './context.js';

interface StopArgs extends GlobalArgs {
  containers: string[];
  time: number;
  'run-dir'?: string;
}

export const stopCommand: CommandModule<GlobalArgs, StopArgs> = {
  command: 'stop <containers..>',
  describe: "stop containers: the image's StopSignal (default SIGTERM), SIGKILL after the timeout",
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('containers', { type: 'string', array: true, demandOption: true, describe: 'names or ids' })
      .option('time', { alias: 't', type: 'number', default: 10, describe: 'seconds to wait before SIGKILL' })
      .option('run-dir', { type: 'string', describe: 'container records ($STRATA_RUN_DIR, /run/strata)' }),
  handler: async (argv) => {
    const runDir = resolveRunDir(argv['run-dir']);
    // Each in turn, all attempted; the first failure decides the exit code.
    let failure: unknown;
    for (const ref of argv.containers) {
      try {
        await stopContainer(runDir, ref, argv.time);
        process.stdout.write(`${ref}\n`);
      } catch (err) {
        failure ??= err;
        if (argv.containers.length > 1) process.stderr.write(`strata: ${(err as Error).message}\n`);
      }
    }
    if (failure) throw failure;
  },
};
