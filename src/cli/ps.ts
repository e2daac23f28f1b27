// strata ps [-a] [--json]
import type { Argv, CommandModule } from 'yargs';

import { resolveRunDir } from '../run/paths.js';
import { listContainers, type ContainerInfo } from '../run/status.js';
import type { GlobalArgs } from './context.js';
import { printJson, printTable, shortDigest } from './output.js';

interface PsArgs extends GlobalArgs {
  all: boolean;
  json: boolean;
  'run-dir'?: string;
}

function ago(iso: string | undefined): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${Math.floor(s / 60)} minutes ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} hours ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

function statusText(c: ContainerInfo): string {
  if (c.status === 'exited')
    return c.exitCode === undefined ? 'Exited' : `Exited (${c.exitCode}) ${ago(c.finishedAt)}`.trim();
  if (c.status === 'running') return 'Up';
  return c.status[0].toUpperCase() + c.status.slice(1);
}

export const psCommand: CommandModule<GlobalArgs, PsArgs> = {
  command: 'ps',
  describe: 'list containers (running ones; -a for all)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('all', {
        alias: 'a',
        type: 'boolean',
        default: false,
        describe: 'also containers that have ended',
      })
      .option('json', { type: 'boolean', default: false })
      .option('run-dir', { type: 'string', describe: 'container records ($STRATA_RUN_DIR, /run/strata)' }),
  handler: (argv) => {
    const all = listContainers(resolveRunDir(argv['run-dir']));
    const shown = argv.all ? all : all.filter((c) => c.status !== 'exited' && c.status !== 'unknown');
    if (argv.json) return printJson(shown);
    printTable(
      ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'RUNTIME', 'NAMES'],
      shown.map((c) => [
        c.id.slice(0, 12),
        c.image === c.imageDigest ? shortDigest(c.image) : c.image,
        JSON.stringify(c.command.join(' ').slice(0, 30)),
        ago(c.created),
        statusText(c),
        c.runtime,
        c.name,
      ]),
    );
  },
};
