// strata mount IMAGE DIR / strata umount DIR: an image served at a directory of the caller's
// mount namespace, for inspection. `mount` stays in the foreground until the mount goes
// (`strata umount DIR`, umount(8)) or it gets SIGINT/SIGTERM/SIGHUP, and leaves nothing behind (its
// image lease included). The mount is nosuid,nodev and only for the mounting user unless
// --allow-other (see mount/attach.ts).
import type { Argv, CommandModule } from 'yargs';
import { mountImage, unmount, type MountMethod } from '../mount/attach.js';
import { limitServerHeap } from '../mount/serve.js';
import { storeFor, type GlobalArgs } from './context.js';
import { shortDigest } from './output.js';

// Before anything else allocates: the young generation can only be kept from growing, not
// shrunk, so the earlier this runs the smaller the server stays (yargs' parsing alone grows it).
limitServerHeap();

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export interface MountArgs extends GlobalArgs {
  image: string;
  dir: string;
  passthrough: boolean;
  /** Absent on main.ts's fast path, which handles no --allow-other. */
  allowOther?: boolean;
  method: 'auto' | MountMethod;
}

export const mountCommand: CommandModule<GlobalArgs, MountArgs> = {
  command: 'mount <image> <dir>',
  describe: 'serve an image read-only at DIR until Ctrl-C or `strata umount DIR`',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: 'name, name:tag or digest' })
      .positional('dir', { type: 'string', demandOption: true, describe: 'an existing directory' })
      .option('passthrough', {
        type: 'boolean',
        default: true,
        describe: 'let the kernel read file contents directly (FUSE passthrough)',
      })
      .option('allow-other', {
        type: 'boolean',
        default: false,
        describe: 'let other users read the mount too (it stays nosuid,nodev)',
      })
      .option('method', {
        choices: ['auto', 'mount-api', 'fusermount3'] as const,
        default: 'auto' as const,
        describe: 'how to mount; auto falls back to fusermount3 when fsopen is not permitted',
      }),
  handler: (argv) => mountMain(argv),
};

/** The whole `mount` command, for yargs' handler and for main.ts's start path without yargs. */
export async function mountMain(argv: MountArgs): Promise<void> {
  const store = await storeFor(argv);
  const mount = await mountImage({
    storeRoot: store.root,
    ref: argv.image,
    dir: argv.dir,
    passthrough: argv.passthrough,
    allowOther: argv.allowOther ?? false,
    method: argv.method,
  });
  mount.handler.on('warn', (w: { code: string; error?: unknown }) =>
    process.stderr.write(`strata: warning: ${w.code}: ${String(w.error)}\n`),
  );
  // A failure to release the lease surfaces through mount.done, below.
  const stop = () => void mount.stop().catch(() => undefined);
  // SIGHUP too: a closed terminal would otherwise kill the server and leave its lease behind.
  for (const signal of STOP_SIGNALS) process.once(signal, stop);
  process.stdout.write(
    `mounted ${shortDigest(mount.image.manifestDigest)} at ${mount.dir} ` +
      `(${mount.method}, passthrough ${argv.passthrough ? 'on' : 'off'}, pid ${process.pid})\n`,
  );
  const end = await mount.done;
  for (const signal of STOP_SIGNALS) process.off(signal, stop);
  if (end.reason === 'error') {
    process.stderr.write(`strata: the FUSE device failed: ${end.detail}\n`);
    process.exitCode = 1;
  }
}

export const umountCommand: CommandModule<GlobalArgs, GlobalArgs & { dir: string }> = {
  command: 'umount <dir>',
  describe: 'unmount a `strata mount`; its server then exits',
  builder: (y: Argv<GlobalArgs>) => y.positional('dir', { type: 'string', demandOption: true }),
  handler: async (argv) => {
    await unmount(argv.dir);
  },
};
