// strata fsck [--repair] [--json]; exits 1 when errors remain.
import type { Argv, CommandModule } from 'yargs';
import { fsck } from '../store/fsck.js';
import { storeFor, type GlobalArgs } from './context.js';
import { printJson, progress } from './output.js';

interface FsckArgs extends GlobalArgs {
  repair: boolean;
  json: boolean;
}

export const fsckCommand: CommandModule<GlobalArgs, FsckArgs> = {
  command: 'fsck',
  describe: 're-hash objects, check indexes, records, names and leases',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('repair', { type: 'boolean', default: false, describe: 'remove what is corrupt or stale' })
      .option('json', { type: 'boolean', default: false }),
  handler: async (argv) => {
    const store = await storeFor(argv);
    const bar = progress(!argv.json);
    const result = await fsck(store, {
      repair: argv.repair,
      onWait: () => bar.note('waiting for other store users to finish...'),
      onProgress: (p) => bar.update(p.done, Math.max(p.total, 1), `checking ${p.phase}`),
    }).finally(() => bar.stop());
    if (argv.json) printJson(result);
    else {
      for (const f of result.findings) {
        const status = f.repaired ? ' (repaired)' : '';
        process.stdout.write(`${f.severity} ${f.kind}: ${f.path}: ${f.message}${status}\n`);
      }
      const c = result.checked;
      process.stdout.write(
        `checked ${c.objects} objects, ${c.indexes} indexes, ${c.images} images, ${c.refs} names, ${c.leases} leases: ` +
          (result.errors ? `${result.errors} errors remain\n` : 'clean\n'),
      );
    }
    if (result.errors) process.exitCode = 1;
  },
};
