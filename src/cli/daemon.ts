// strata daemon [--socket PATH] [--log-file FILE] [--exit-idle SECONDS] [--upgrade] [--list | --status]
import type { Argv, CommandModule } from 'yargs';

import { daemonRequest } from '../daemon/client.js';
import { runDaemon } from '../daemon/daemon.js';
import { parseExitIdle } from '../daemon/idle.js';
import { DEFAULT_ROOT_LOG, DEFAULT_SOCKET, resolveLogFile, resolveSocket } from '../daemon/paths.js';
import { InvalidArgumentError, UnavailableError } from '../errors.js';
import { resolveRoot } from '../store/store.js';
import type { GlobalArgs } from './context.js';
import { printJson, printTable, shortDigest } from './output.js';

interface DaemonArgs extends GlobalArgs {
  socket?: string;
  'log-file'?: string;
  'exit-idle'?: string;
  list: boolean;
  status: boolean;
  upgrade: boolean;
}

export const daemonCommand: CommandModule<GlobalArgs, DaemonArgs> = {
  command: 'daemon',
  describe: 'run the strata daemon, which serves container roots to the OCI hooks',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('socket', {
        type: 'string',
        describe: `unix socket to serve on (default: $STRATA_SOCKET, then ${DEFAULT_SOCKET}); only root may use it`,
      })
      .option('log-file', {
        type: 'string',
        describe: `log file (default: $STRATA_LOG_FILE, then ${DEFAULT_ROOT_LOG} for root, else $XDG_STATE_HOME/strata/daemon.log)`,
      })
      .option('exit-idle', {
        type: 'string',
        describe: 'exit once no container has been served for this many seconds (as on-demand daemons do)',
      })
      .option('upgrade', {
        type: 'boolean',
        default: false,
        describe:
          'take every container over from the daemon running on the socket (e.g. a newer build), then ask it to leave; no request fails meanwhile',
      })
      .option('list', { type: 'boolean', default: false, describe: 'ask the running daemon what it serves' })
      .option('status', {
        type: 'boolean',
        default: false,
        describe: 'ask the running daemon for its status (JSON)',
      })
      .epilog(
        'Started on demand by the createRuntime hook, or by systemd (systemd/strata.service, Type=notify). ' +
          `Logs go to ${DEFAULT_ROOT_LOG} when run as root.`,
      ),
  handler: async (argv) => {
    const socketPath = resolveSocket(argv.socket);
    if (argv.list || argv.status) {
      const res = await daemonRequest(socketPath, { op: argv.list ? 'list' : 'status' });
      if (!res.ok) throw new UnavailableError(res.error?.message ?? 'the daemon refused the request');
      if (argv.status) return printJson(res.status);
      const rows = (res.containers ?? []).map((c) => [
        c.id,
        shortDigest(c.image),
        c.state,
        c.since,
        c.bundle,
      ]);
      return printTable(['CONTAINER', 'IMAGE', 'STATE', 'SINCE', 'BUNDLE'], rows);
    }
    let exitIdleMs: number | undefined;
    try {
      exitIdleMs = argv['exit-idle'] === undefined ? undefined : parseExitIdle(argv['exit-idle']);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
    await runDaemon({
      socketPath,
      storeRoot: resolveRoot(argv.root),
      logFile: resolveLogFile(argv['log-file']),
      exitIdleMs,
      upgrade: argv.upgrade,
    });
  },
};
