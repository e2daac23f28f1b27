// strata hooks install [--dir D] [--socket PATH]
import type { Argv, CommandModule } from 'yargs';

import { DEFAULT_HOOKS_DIR, installHooks } from '../spec/hooks-d.js';
import { daemonArgv, hookExecutable } from '../executables.js';
import { resolveSocket } from '../daemon/paths.js';
import { resolveRoot } from '../store/store.js';
import type { GlobalArgs } from './context.js';

interface InstallArgs extends GlobalArgs {
  dir: string;
  socket?: string;
}

const installCmd: CommandModule<GlobalArgs, InstallArgs> = {
  command: 'install',
  describe: 'write podman hooks.d entries that run strata-hook for containers annotated org.strata.image',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('dir', { type: 'string', default: DEFAULT_HOOKS_DIR, describe: 'hooks.d directory' })
      .option('socket', {
        type: 'string',
        describe: 'daemon socket the hooks use (default: $STRATA_SOCKET, then /run/strata/strata.sock)',
      }),
  handler: (argv) => {
    const socketPath = resolveSocket(argv.socket);
    const paths = installHooks(argv.dir, {
      hookPath: hookExecutable(),
      socketPath,
      daemonArgv: daemonArgv({ storeRoot: resolveRoot(argv.root), socketPath }),
    });
    for (const p of paths) process.stdout.write(`${p}\n`);
  },
};

export const hooksCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'hooks <command>',
  describe: 'OCI hooks integration (podman hooks.d)',
  builder: (y: Argv<GlobalArgs>) => y.command(installCmd).demandCommand(1),
  handler: () => undefined,
};
