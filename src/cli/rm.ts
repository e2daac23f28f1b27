// strata rm [-f] NAME|ID...
import type { Argv, CommandModule } from 'yargs';

import { resolveRunDir } from '../run/paths.js';
import { removeContainer } from '../run/stop.js';
import type { GlobalArgs } from './context.js';

interface RmArgs extends GlobalArgs {
  containers: string[];
  force: boolean;
  'run-dir'?: string;
}

export const rmCommand: CommandModule<GlobalArgs, RmArgs> = {
  command: 'rm <containers..>',
  describe: 'remove containers (-f: kill running ones first)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('containers', { type: 'string', array: true, demandOption: true, describe: 'names or ids' })
      .option('force', {
        alias: 'f',
        type: 'boolean',
        default: false,
        describe: 'kill a running container first',
      })
      .option('run-dir', { type: 'string', describe: 'container records ($STRATA_RUN_DIR, /run/strata)' }),
  handler: async (argv) => {
    const runDir = resolveRunDir(argv['run-dir']);
    let failure: unknown;
    for (const ref of argv.containers) {
      try {
        await removeContainer(runDir, ref, argv.force);
        process.stdout.write(`${ref}\n`);
      } catch (err) {
        failure ??= err;
        if (argv.containers.length > 1) process.stderr.write(`strata: ${(err as Error).message}\n`);
      }
    }
    if (failure) throw failure;
  },
};
