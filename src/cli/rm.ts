// strata rm [-f] NAME|ID...
import type { Argv, CommandModule } from 'yargs';

import { removeContainer } from '../run/stop.js';
import type { GlobalArgs } from './context.js';
import { containersBuilder, forEachContainer, type ContainersArgs } from './stop.js';

interface RmArgs extends ContainersArgs {
  force: boolean;
}

export const rmCommand: CommandModule<GlobalArgs, RmArgs> = {
  command: 'rm <containers..>',
  describe: 'remove containers (-f: kill running ones first)',
  builder: (y: Argv<GlobalArgs>) =>
    containersBuilder(y).option('force', {
      alias: 'f',
      type: 'boolean',
      default: false,
      describe: 'kill a running container first',
    }),
  handler: (argv) => forEachContainer(argv, (runDir, ref) => removeContainer(runDir, ref, argv.force)),
};
