#!/usr/bin/env node
// The strata CLI. Each command lives in its own file and is registered here with one line.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { bundleCommand } from './bundle.js';
import { daemonCommand } from './daemon.js';
import { fsckCommand } from './fsck.js';
import { hooksCommand } from './hooks.js';
import { gcCommand } from './gc.js';
import { imageCommand } from './image.js';
import { mountCommand, umountCommand } from './mount.js';
import { exitCodeFor, printError } from './output.js';
import { psCommand } from './ps.js';
import { rmCommand } from './rm.js';
import { runCommand } from './run.js';
import { stopCommand } from './stop.js';

export async function main(args: string[]): Promise<void> {
  await yargs(args)
    .scriptName('strata')
    .option('root', { type: 'string', describe: 'store root (default: $STRATA_ROOT, then /var/lib/strata)' })
    .command(imageCommand)
    .command(gcCommand)
    .command(fsckCommand)
    .command(daemonCommand)
    .command(bundleCommand)
    .command(hooksCommand)
    .command(mountCommand)
    .command(umountCommand)
    .command(runCommand)
    .command(psCommand)
    .command(stopCommand)
    .command(rmCommand)
    .demandCommand(1)
    .strict()
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`strata: ${msg} (see strata --help)\n`);
      process.exit(2);
    })
    .parseAsync();
}

main(hideBin(process.argv)).catch((err: unknown) => {
  printError(err);
  process.exitCode = exitCodeFor(err);
});
