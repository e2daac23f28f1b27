// Directories the daemon deletes behind its answers: a `strata run --rm` container's directory
// (bundle, record, the runtime's pid file) is renamed out of the run dir's containers/ before the
// exit code goes back (src/run/record.ts detachRecord) and deleted here, off the start path
// (docs/architecture.md#start-path). The daemon's stop waits for every deletion under way, and the
// first run in a run directory also deletes what a killed daemon left (`.removing-<id>`).
import { rm } from 'node:fs/promises';

import { leftoverRemovals } from '../run/record.js';
import type { Logger } from './log.js';

export class BackgroundRemovals {
  private readonly pending = new Set<Promise<void>>();
  private readonly swept = new Set<string>();

  constructor(private readonly logger: Logger) {}

  get size(): number {
    return this.pending.size;
  }

  /** Deletes `dir` (recursively) in the background. */
  add(dir: string): void {
    const p: Promise<void> = rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 })
      .catch((err: unknown) => this.logger.log('warn', `removing ${dir}: ${String(err)}`))
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Once per run directory: deletes the directories a previous daemon moved but did not delete. */
  sweepOnce(runDir: string): void {
    if (this.swept.has(runDir)) return;
    this.swept.add(runDir);
    for (const dir of leftoverRemovals(runDir)) this.add(dir);
  }

  /** Resolves once every deletion under way has ended. */
  async settle(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }
}
