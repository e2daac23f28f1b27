// The entry the createRuntime hook runs when it finds no daemon (src/executables.ts daemonArgv):
//
//   node main.js --root STORE --socket PATH [--log-file FILE] [--exit-idle SECONDS]
//                [--idle-connection-timeout SECONDS] [--upgrade]
//
// The same daemon as `strata daemon`, without the CLI's yargs (this start is on a container's
// start path), plus --exit-idle: a daemon born under the runtime's subreaper must not outlive its
// containers by more than that (idle.ts). Failures reach the hook through sd_notify. runDaemon
// limits the server's heap itself, once, as for `strata daemon`.
import { parseArgs } from 'node:util';

import { resolveRoot } from '../store/store.js';
import { runDaemon } from './daemon.js';
import { parseExitIdle } from './idle.js';
import { sdNotify } from './notify.js';
import { resolveLogFile, resolveSocket } from './paths.js';

/** A positive number of seconds (fractions allowed) in milliseconds. */
function parseSeconds(flag: string, value: string): number {
  const s = Number(value);
  if (value.trim() === '' || !Number.isFinite(s) || s <= 0) {
    throw new Error(`${flag} wants a positive number of seconds, not ${JSON.stringify(value)}`);
  }
  return Math.round(s * 1000);
}

async function main(argv: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        root: { type: 'string' },
        socket: { type: 'string' },
        'log-file': { type: 'string' },
        'exit-idle': { type: 'string' },
        'idle-connection-timeout': { type: 'string' },
        upgrade: { type: 'boolean' },
      },
      strict: true,
    }));
    if (values['exit-idle'] !== undefined) parseExitIdle(values['exit-idle']);
    if (values['idle-connection-timeout'] !== undefined)
      parseSeconds('--idle-connection-timeout', values['idle-connection-timeout']);
  } catch (err) {
    // runDaemon reports its own failures; a bad argv never gets there, and the hook waiting for
    // readiness would otherwise wait its full timeout.
    const message = `strata daemon: ${(err as Error).message}`;
    sdNotify({ STATUS: message, ERRNO: '22' });
    throw err;
  }
  await runDaemon({
    storeRoot: resolveRoot(values.root),
    socketPath: resolveSocket(values.socket),
    logFile: resolveLogFile(values['log-file']),
    exitIdleMs: values['exit-idle'] === undefined ? undefined : parseExitIdle(values['exit-idle']),
    upgrade: values.upgrade,
    idleConnectionMs:
      values['idle-connection-timeout'] === undefined
        ? undefined
        : parseSeconds('--idle-connection-timeout', values['idle-connection-timeout']),
  });
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`strata daemon: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
