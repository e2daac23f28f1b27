// strata bundle IMAGE DIR [run options] [-- CMD...]
import type { Argv, CommandModule } from 'yargs';

import { writeBundle } from '../spec/bundle.js';
import { daemonArgv, hookExecutable } from '../executables.js';
import { resolveSocket } from '../daemon/paths.js';
import {
  checkBindSources,
  parseAnnotation,
  parseMount,
  parsePidsLimit,
  parseSecurityOpts,
  parseVolume,
} from '../spec/options.js';
import { storeFor, type GlobalArgs } from './context.js';

interface BundleArgs extends GlobalArgs {
  image: string;
  dir: string;
  cmd?: string[];
  'read-only': boolean;
  env?: string[];
  workdir?: string;
  user?: string;
  volume?: string[];
  mount?: string[];
  hostname?: string;
  network?: string;
  'cap-add'?: string[];
  'cap-drop'?: string[];
  entrypoint?: string;
  'security-opt'?: string[];
  'pids-limit'?: string;
  annotation?: string[];
  runtime?: string;
  socket?: string;
}

export const bundleCommand: CommandModule<GlobalArgs, BundleArgs> = {
  command: 'bundle <image> <dir> [cmd..]',
  describe: 'write an OCI bundle (config.json with the strata hooks, empty rootfs) for runc/crun run',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: 'stored image (name or digest)' })
      .positional('dir', { type: 'string', demandOption: true, describe: 'bundle directory' })
      .positional('cmd', { type: 'string', array: true, describe: 'command (after --)' })
      .option('read-only', { type: 'boolean', default: false, describe: 'read-only root filesystem' })
      .option('env', { alias: 'e', type: 'string', array: true, describe: 'K=V, or K to copy from here' })
      .option('workdir', { alias: 'w', type: 'string' })
      .option('user', { alias: 'u', type: 'string', describe: 'USER, UID, USER:GROUP or UID:GID' })
      .option('volume', {
        alias: 'v',
        type: 'string',
        array: true,
        describe: 'SRC:DST[:OPTS] or DST (tmpfs)',
      })
      .option('mount', { type: 'string', array: true, describe: 'type=bind|tmpfs,src=…,dst=…' })
      .option('hostname', { type: 'string' })
      .option('network', { choices: ['none', 'host'], default: 'none' })
      .option('cap-add', { type: 'string', array: true })
      .option('cap-drop', { type: 'string', array: true })
      .option('entrypoint', { type: 'string', describe: 'replace the image entrypoint ("" clears it)' })
      .option('security-opt', {
        type: 'string',
        array: true,
        describe:
          'seccomp=unconfined|FILE, no-new-privileges (default seccomp: /usr/share/containers/seccomp.json)',
      })
      .option('pids-limit', {
        type: 'string',
        describe: 'most tasks in the container (-1: none; default 2048 where both runtimes can enforce it)',
      })
      .option('annotation', { type: 'string', array: true, describe: 'KEY=VALUE annotation' })
      .option('runtime', {
        choices: ['crun', 'runc'],
        describe: 'the runtime that will run the bundle (the pids default depends on it)',
      })
      .option('socket', {
        type: 'string',
        describe: 'daemon socket for the hooks (default: $STRATA_SOCKET, then /run/strata/strata.sock)',
      }),
  handler: async (argv) => {
    const store = await storeFor(argv);
    const socketPath = resolveSocket(argv.socket);
    const mounts = checkBindSources([
      ...(argv.volume ?? []).map(parseVolume),
      ...(argv.mount ?? []).map(parseMount),
    ]);
    // yargs leaves what follows `--` in argv._, after the command's own name.
    const command = [...(argv.cmd ?? []), ...argv._.slice(1)].map(String);
    const result = await writeBundle({
      storeRoot: store.root,
      image: argv.image,
      dir: argv.dir,
      socketPath,
      hookPath: hookExecutable(),
      daemonArgv: daemonArgv({ storeRoot: store.root, socketPath }),
      run: {
        command: command.length ? command : undefined,
        entrypoint:
          argv.entrypoint === undefined ? undefined : argv.entrypoint === '' ? [] : [argv.entrypoint],
        env: argv.env,
        workdir: argv.workdir,
        user: argv.user,
        hostname: argv.hostname,
        readOnly: argv['read-only'],
        mounts,
        network: argv.network as 'none' | 'host',
        capAdd: argv['cap-add'],
        capDrop: argv['cap-drop'],
        ...parseSecurityOpts(argv['security-opt'] ?? []),
        pidsLimit: argv['pids-limit'] === undefined ? undefined : parsePidsLimit(argv['pids-limit']),
        annotations: Object.fromEntries((argv.annotation ?? []).map(parseAnnotation)),
        runtime: argv.runtime as 'crun' | 'runc' | undefined,
      },
    });
    process.stdout.write(`${result.dir} (image ${result.manifestDigest})\n`);
  },
};
