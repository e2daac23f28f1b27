// Directories the daemon deletes behind its answers: a `strata run --rm` container's directory
// (bundle, record, the runtime's pid file) is moved out of the run dir into the trash directory
// beside the daemon's socket (`<socket>.removing/<id>`) before the exit code goes back
// (src/run/record.ts detachRecord), and deleted here, off the start path
// (docs/architecture.md#start-path). What a killed daemon left there is deleted by the next one;
// the daemon's stop waits for every deletion under way and removes the trash directory.
import { readdirSync, rmdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';

import type { DeferredRemovals } from '../run/foreground.js';
import type { Logger } from './log.js';

export class BackgroundRemovals implements DeferredRemovals {
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly logger: Logger,
    readonly trashDir: string,
  ) {
    let left: string[] = [];
    try {
      left = readdirSync(trashDir);
    } catch {
      // none yet
    }
    for (const name of left) this.add(join(trashDir, name));
  }

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

  /** Resolves once every deletion under way has ended; then removes the (empty) trash directory. */
  async settle(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
    try {
      rmdirSync(this.trashDir);
    } catch {
      // absent, or a deletion failed (logged) and left something
    }
  }
}
