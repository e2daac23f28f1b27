// strata gc [--dry-run] [--json]
import type { Argv, CommandModule } from 'yargs';
import { gc } from '../store/gc.js';
import { storeFor, type GlobalArgs } from './context.js';
import { formatBytes, printJson, progress } from './output.js';

interface GcArgs extends GlobalArgs {
  'dry-run': boolean;
  json: boolean;
}

export const gcCommand: CommandModule<GlobalArgs, GcArgs> = {
  command: 'gc',
  describe: 'remove objects, blobs, indexes and images that no name or lease holds',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('dry-run', { type: 'boolean', default: false, describe: 'report what would be removed' })
      .option('json', { type: 'boolean', default: false }),
  handler: async (argv) => {
    const store = await storeFor(argv);
    const bar = progress(!argv.json);
    const result = await gc(store, {
      dryRun: argv['dry-run'],
      onWait: () => bar.note('waiting for other store users to finish...'),
      onProgress: (p) => bar.update(p.done, Math.max(p.total, 1), p.phase),
    }).finally(() => bar.stop());
    if (argv.json) return printJson(result);
    const verb = result.dryRun ? 'would remove' : 'removed';
    const total = Object.values(result.bytes).reduce((a, b) => a + b, 0);
    const parts = Object.entries(result.removed).map(([k, n]) => `${n} ${k}`);
    if (result.staleLeases.length) {
      const ids = result.staleLeases.join(', ');
      process.stdout.write(
        `${result.dryRun ? 'would release' : 'released'} stale leases (holder gone): ${ids}\n`,
      );
    }
    process.stdout.write(`${verb} ${parts.join(', ')} (${formatBytes(total)})\n`);
  },
};
