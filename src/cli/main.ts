#!/usr/bin/env node
// The strata CLI. Each command lives in its own file, is registered in commands.ts with one row
// and loaded only when it runs, so `strata --help` or `strata ps` does not pay for the importer
// or the FUSE server. `strata run` skips yargs altogether: it has its own parser
// (src/run/args.ts) and is the start path of every container. So does a plain `strata mount`:
// the FUSE server it becomes would keep yargs in memory for its whole life.
import { COMMANDS, lazy, mountFastPath, runFastPath } from './commands.js';
import { exitCodeFor, printError } from './output.js';

export async function main(args: string[]): Promise<void> {
  const fast = runFastPath(args);
  if (fast) {
    const { runMain } = await import('./run.js');
    process.exitCode = await runMain(fast.rest, fast.root);
    return;
  }
  const mount = mountFastPath(args);
  if (mount) {
    const { mountMain } = await import('./mount.js');
    await mountMain(mount);
    return;
  }
  const { default: yargs } = await import('yargs');
  let y = yargs(args)
    .scriptName('strata')
    .option('root', { type: 'string', describe: 'store root (default: $STRATA_ROOT, then /var/lib/strata)' });
  for (const entry of COMMANDS) y = y.command(lazy(entry));
  await y
    // yargs' ESM build wraps help text at a fixed width by characters, not words (`conta\niner`):
    // unwrapped, each line stays whole and the terminal folds it.
    .wrap(null)
    .demandCommand(1)
    .strict()
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`strata: ${msg} (see strata --help)\n`);
      process.exit(2);
    })
    .parseAsync();
}

main(process.argv.slice(2)).catch((err: unknown) => {
  printError(err);
  process.exitCode = exitCodeFor(err);
});
