#!/usr/bin/env node
// The strata CLI. Each command lives in its own file and is registered here with one line.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { fsckCommand } from './fsck.js';
import { gcCommand } from './gc.js';
import { imageCommand } from './image.js';
import { exitCodeFor, printError } from './output.js';

export async function main(args: string[]): Promise<void> {
  await yargs(args)
    .scriptName('strata')
    .option('root', { type: 'string', describe: 'store root (default: $STRATA_ROOT, then /var/lib/strata)' })
    .command(imageCommand)
    .command(gcCommand)
    .command(fsckCommand)
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
