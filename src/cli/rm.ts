// strata rm [-f] NAME|ID...
//
// The daemon releases a container's lease when the container's root goes. A daemon that died
// (kill -9) cannot: its leases name it as their holder, so once the container is removed its
// stale lease is released here (the daemon's next start, or gc, would too).
import type { Argv, CommandModule } from 'yargs';

import { removeContainer } from '../run/stop.js';
import { UnavailableError } from '../errors.js';
import { releaseStaleLeases } from '../store/leases.js';
import { resolveRoot } from '../store/store.js';
import type { GlobalArgs } from './context.js';
import { containersBuilder, forEachContainer, type ContainersArgs } from './stop.js';

interface RmArgs extends ContainersArgs {
  force: boolean;
}

/** How long rm waits for the store lock (held by an import, gc or fsck) before leaving the lease to gc. */
const LEASE_LOCK_WAIT_MS = 10_000;

async function releaseLeaseOf(root: string, containerId: string): Promise<void> {
  try {
    await releaseStaleLeases(root, (l) => l.id === containerId || l.labels?.container === containerId, {
      timeoutMs: LEASE_LOCK_WAIT_MS,
    });
  } catch (err) {
    const why = err instanceof UnavailableError ? 'the store is busy' : (err as Error).message;
    process.stderr.write(
      `strata: warning: the lease of container ${containerId} may be left (${why}); strata gc releases it\n`,
    );
  }
}

export const rmCommand: CommandModule<GlobalArgs, RmArgs> = {
  command: 'rm <containers..>',
  describe: 'remove containers (-f: kill running ones first)',
  builder: (y: Argv<GlobalArgs>) =>
    containersBuilder(y).option('force', {
      alias: 'f',
      type: 'boolean',
      default: false,
      describe: 'kill a running container first',
    }),
  handler: (argv) =>
    forEachContainer(argv, async (runDir, ref) => {
      const removed = await removeContainer(runDir, ref, argv.force);
      await releaseLeaseOf(resolveRoot(argv.root), removed.id);
    }),
};
