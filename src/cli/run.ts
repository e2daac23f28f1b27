// strata run [OPTIONS] IMAGE [COMMAND...]: parsed by src/run/args.ts, not yargs (docker-style
// options before IMAGE, the command after it untouched). runMain is the whole command and can
// be called straight from main.ts's first line for a start path without yargs.
import type { CommandModule } from 'yargs';

import { resolveSocket } from '../daemon/paths.js';
import { parseRunArgs, RUN_USAGE, withPullDone } from '../run/args.js';
import { RUN_FAILED } from '../run/exit-codes.js';
import { resolveRunDir } from '../run/paths.js';
import { selectRuntime } from '../run/runtime.js';
import { resolveRoot } from '../store/store.js';
import { printError } from './output.js';
import type { GlobalArgs } from './context.js';

/** `strata run` with its arguments (after "run"); resolves with the exit code. */
export async function runMain(argv: string[], globalRoot?: string): Promise<number> {
  try {
    const args = parseRunArgs(argv);
    if (args.help) {
      process.stdout.write(RUN_USAGE);
      return 0;
    }
    if (args.vm) {
      const { runInVm, execFailureCode } = await import('../vm/client.js');
      const storeRoot = resolveRoot(args.root ?? globalRoot);
      try {
        return await runInVm({ storeRoot, runDir: resolveRunDir(args.runDir), args });
      } catch (err) {
        printError(err);
        return execFailureCode(err) ?? RUN_FAILED;
      }
    }
    const ctx = {
      storeRoot: resolveRoot(args.root ?? globalRoot),
      socketPath: resolveSocket(args.socket),
      runDir: resolveRunDir(args.runDir),
    };
    if (args.pull !== 'never') {
      const { ensureImage } = await import('../run/pull-policy.js');
      await ensureImage(ctx.storeRoot, args.image, args.pull);
    }
    const { ensureDaemon } = await import('../run/daemon.js');
    await ensureDaemon(ctx.storeRoot, ctx.socketPath);
    if (args.detach) {
      const rt = selectRuntime(ctx.runDir, args.runtime);
      const { runDetached } = await import('../run/detached.js');
      const record = await runDetached(ctx, args, rt);
      process.stdout.write(`${record.id}\n`);
      return 0;
    }
    const { runThroughDaemon } = await import('../run/client.js');
    // The daemon parses the arguments again with our environment; a global --root goes along.
    // It gets --pull=never: the image is here now (or was asked never to be pulled).
    const sent = withPullDone(argv);
    const forwarded = globalRoot && args.root === undefined ? ['--root', globalRoot, ...sent] : sent;
    return await runThroughDaemon(ctx.socketPath, forwarded);
  } catch (err) {
    printError(err);
    return RUN_FAILED;
  }
}

/** The arguments after the `run` command word, as given (yargs would reparse the container's). */
export function argsAfterCommand(raw: string[], command: string): string[] {
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === '--root') i++;
    else if (raw[i] === command) return raw.slice(i + 1);
  }
  return [];
}

export const runCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'run',
  describe: 'run a command in a new container from a stored image (strata run --help)',
  builder: (y) => y.help(false).version(false).strict(false),
  handler: async (argv) => {
    process.exitCode = await runMain(argsAfterCommand(process.argv.slice(2), 'run'), argv.root);
  },
};
