// The strata command table: one row per command, whose module (and everything it imports) is
// loaded only when yargs picks that command, and the argv test that sends `strata run` past yargs.
import type { Argv, CommandModule } from 'yargs';

import type { GlobalArgs } from './context.js';

// Each command module's own type differs (its args); the lazy wrapper only passes them through.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyCommand = CommandModule<GlobalArgs, any>;

/** command and describe repeat the module's own (test/cli/main.test.ts checks they agree). */
export interface CommandEntry {
  command: string;
  describe: string;
  load: () => Promise<AnyCommand>;
}

export const COMMANDS: CommandEntry[] = [
  {
    command: 'image <command>',
    describe: 'manage images in the store',
    load: async () => (await import('./image.js')).imageCommand,
  },
  {
    command: 'login <registry>',
    describe: "log in to a registry (saved in podman's auth.json)",
    load: async () => (await import('./login.js')).loginCommand,
  },
  {
    command: 'logout [registry]',
    describe: "remove a registry's credentials from podman's auth.json",
    load: async () => (await import('./login.js')).logoutCommand,
  },
  {
    command: 'gc',
    describe: 'remove objects, blobs, indexes and images that no name or lease holds',
    load: async () => (await import('./gc.js')).gcCommand,
  },
  {
    command: 'fsck',
    describe: 're-hash objects, check indexes, records, names and leases',
    load: async () => (await import('./fsck.js')).fsckCommand,
  },
  {
    command: 'daemon',
    describe: 'run the strata daemon, which serves container roots to the OCI hooks',
    load: async () => (await import('./daemon.js')).daemonCommand,
  },
  {
    command: 'bundle <image> <dir> [cmd..]',
    describe: 'write an OCI bundle (config.json with the strata hooks, empty rootfs) for runc/crun run',
    load: async () => (await import('./bundle.js')).bundleCommand,
  },
  {
    command: 'hooks <command>',
    describe: 'OCI hooks integration (podman hooks.d)',
    load: async () => (await import('./hooks.js')).hooksCommand,
  },
  {
    command: 'mount <image> <dir>',
    describe: 'serve an image read-only at DIR until Ctrl-C or `strata umount DIR`',
    load: async () => (await import('./mount.js')).mountCommand,
  },
  {
    command: 'umount <dir>',
    describe: 'unmount a `strata mount`; its server then exits',
    load: async () => (await import('./mount.js')).umountCommand,
  },
  {
    command: 'run',
    describe: 'run a command in a new container from a stored image (strata run --help)',
    load: async () => (await import('./run.js')).runCommand,
  },
  {
    command: 'ps',
    describe: 'list containers (running ones; -a for all)',
    load: async () => (await import('./ps.js')).psCommand,
  },
  {
    command: 'stop <containers..>',
    describe: "stop containers: the image's StopSignal (default SIGTERM), SIGKILL after the timeout",
    load: async () => (await import('./stop.js')).stopCommand,
  },
  {
    command: 'vm <action> [name]',
    describe:
      "the VMs of `strata run --vm`: ls, stop [NAME], rm [NAME], exec [NAME] -- CMD (in the guest itself, not a container), logs ID (a `run --vm -d` container's output)",
    load: async () => (await import('./vm.js')).vmCommand,
  },
  {
    command: 'rm <containers..>',
    describe: 'remove containers (-f: kill running ones first)',
    load: async () => (await import('./rm.js')).rmCommand,
  },
];

/** A yargs command that loads its module when yargs picks it (builder) and runs its handler. */
export function lazy(entry: CommandEntry): AnyCommand {
  return {
    command: entry.command,
    describe: entry.describe,
    builder: async (y: Argv<GlobalArgs>) => {
      const { builder } = await entry.load();
      if (typeof builder === 'function') return builder(y);
      return builder ? y.options(builder) : y;
    },
    handler: async (argv) => {
      await (await entry.load()).handler(argv);
    },
  };
}

/**
 * Where `run` starts in argv when it is the command (only --root may precede it), with that
 * --root; undefined for every other command line.
 */
export function runFastPath(args: string[]): { rest: string[]; root?: string } | undefined {
  let root: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === 'run') return { rest: args.slice(i + 1), root };
    if (a === '--root' && i + 1 < args.length) root = args[++i];
    else if (a.startsWith('--root=')) root = a.slice('--root='.length);
    else return undefined;
  }
  return undefined;
}

/** The options of `strata mount`, as yargs would have parsed them. */
export interface MountFastArgs {
  root?: string;
  image: string;
  dir: string;
  passthrough: boolean;
  method: 'auto' | 'mount-api' | 'fusermount3';
}

const MOUNT_METHODS = ['auto', 'mount-api', 'fusermount3'] as const;

/**
 * `strata mount IMAGE DIR` with only --root, --[no-]passthrough and --method, parsed without
 * yargs (2-3 MiB the FUSE server would keep for its whole life). Anything else — --help, an
 * unknown option, a bad value, a missing positional — returns undefined so yargs parses it and
 * prints its usual message.
 */
export function mountFastPath(args: string[]): MountFastArgs | undefined {
  let root: string | undefined;
  let passthrough = true;
  let method: MountFastArgs['method'] = 'auto';
  let command = false;
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const eq = a.indexOf('=');
    const [flag, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? (i + 1 < args.length ? args[++i] : undefined);
    if (flag === '--root') {
      const v = value();
      if (v === undefined || v.startsWith('-')) return undefined;
      root = v;
    } else if (flag === '--method') {
      const v = value();
      if (!MOUNT_METHODS.includes(v as MountFastArgs['method'])) return undefined;
      method = v as MountFastArgs['method'];
    } else if (a === '--passthrough' || a === '--passthrough=true') passthrough = true;
    else if (a === '--no-passthrough' || a === '--passthrough=false') passthrough = false;
    else if (a.startsWith('-')) return undefined;
    else if (!command) {
      if (a !== 'mount') return undefined;
      command = true;
    } else positional.push(a);
  }
  if (!command || positional.length !== 2) return undefined;
  return { root, image: positional[0], dir: positional[1], passthrough, method };
}
