// Import on first use, for strata-runtime (docs/architecture.md#strata-runtime): when the user
// opted in (`import = first-use` in runtime.conf, or $STRATA_RUNTIME_IMPORT) and podman runs an
// image strata's store lacks, the daemon imports it from podman's containers/storage (the
// `strata image import containers-storage:ID` path, src/store/import-foreign.ts) and then serves
// the container from the store.
//
//   - The import runs in a child process (the CLI), not in the daemon: the daemon's event loop
//     keeps serving the FUSE roots of running containers, and a stuck import can be killed.
//   - One import per image at a time: concurrent containers of the same image wait for the same
//     import (one child, one answer for all). Imports of different images run one after another
//     (2-core hosts; each is I/O and hash bound).
//   - Bounded: a container waits at most `waitMs` (below strata-runtime's reply timeout); past
//     that it passes through (runs on podman's rootfs) and the import goes on, so a later
//     container is served. An import that takes longer than `timeoutMs` is killed. A failure is
//     remembered for `retryMs`: containers of that image pass through with the error instead of
//     each retrying a failing import.
import { execa } from 'execa';

import { cliArgv } from '../executables.js';
import type { Logger } from './log.js';

/** How long a container waits for its image's import: well below strata-runtime's reply timeout (30 s). */
export const IMPORT_WAIT_MS = 20_000;
/** An import taking longer is killed. */
export const IMPORT_TIMEOUT_MS = 10 * 60_000;
/** After a failed import, containers of that image pass through this long before it is tried again. */
export const IMPORT_RETRY_MS = 60_000;
/** The CLI's output we keep: its --json result and its error message, both short. */
const MAX_OUTPUT = 1024 * 1024;

export type ImportOutcome =
  | { kind: 'imported'; ref: string; ms: number }
  | { kind: 'pending'; message: string }
  | { kind: 'failed'; message: string };

export interface ImporterOptions {
  storeRoot: string;
  logger: Logger;
  waitMs?: number;
  timeoutMs?: number;
  retryMs?: number;
}

interface Attempt {
  started: number;
  done: Promise<{ ref: string } | { error: string }>;
  /** Set when done settles with an error: containers pass through until then + retryMs. */
  failedAt?: number;
  error?: string;
}

/** Imports images from containers/storage into one store, once per image at a time. */
export class ContainersStorageImporter {
  private readonly attempts = new Map<string, Attempt>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly waitMs: number;
  private readonly timeoutMs: number;
  private readonly retryMs: number;

  constructor(private readonly opts: ImporterOptions) {
    this.waitMs = opts.waitMs ?? IMPORT_WAIT_MS;
    this.timeoutMs = opts.timeoutMs ?? IMPORT_TIMEOUT_MS;
    this.retryMs = opts.retryMs ?? IMPORT_RETRY_MS;
  }

  /**
   * Image `imageId` (hex, podman's image id) from the containers/storage graph root `graphRoot`:
   * the store's manifest digest once imported, or why this container cannot wait for it.
   */
  async importFor(graphRoot: string, imageId: string, forWhom: string): Promise<ImportOutcome> {
    if (!/^[0-9a-f]{64}$/.test(imageId)) return { kind: 'failed', message: `bad image id ${imageId}` };
    const key = `${graphRoot}\0${imageId}`;
    let attempt = this.attempts.get(key);
    if (attempt?.failedAt !== undefined && Date.now() - attempt.failedAt >= this.retryMs) attempt = undefined;
    if (attempt?.error !== undefined) {
      const left = Math.ceil((this.retryMs - (Date.now() - (attempt.failedAt ?? 0))) / 1000);
      return { kind: 'failed', message: `${attempt.error} (tried again in ${left} s)` };
    }
    if (!attempt) attempt = this.start(key, graphRoot, imageId, forWhom);
    const { done, started } = attempt;
    let timer: NodeJS.Timeout | undefined;
    const waited = await Promise.race([
      done,
      new Promise<'wait'>((res) => {
        timer = setTimeout(() => res('wait'), this.waitMs);
      }),
    ]).finally(() => clearTimeout(timer));
    if (waited === 'wait') {
      return {
        kind: 'pending',
        message: `importing image sha256:${imageId} from containers/storage ${graphRoot} takes longer than ${this.waitMs / 1000} s; it goes on, and a later container of this image is served`,
      };
    }
    if ('error' in waited) return { kind: 'failed', message: waited.error };
    return { kind: 'imported', ref: waited.ref, ms: Date.now() - started };
  }

  private start(key: string, graphRoot: string, imageId: string, forWhom: string): Attempt {
    const started = Date.now();
    const { logger } = this.opts;
    const run = this.queue.then(() => {
      logger.log(
        'info',
        `${forWhom}: importing image sha256:${imageId} from containers/storage ${graphRoot}`,
      );
      return this.runImport(graphRoot, imageId);
    });
    this.queue = run.catch(() => undefined);
    const attempt: Attempt = {
      started,
      done: run.then(
        (ref) => {
          this.attempts.delete(key);
          logger.log(
            'info',
            `imported image sha256:${imageId} from containers/storage ${graphRoot} as ${ref} in ${Date.now() - started} ms`,
          );
          return { ref };
        },
        (err: unknown) => {
          const error = `importing image sha256:${imageId} from containers/storage ${graphRoot} failed: ${(err as Error).message}`;
          attempt.failedAt = Date.now();
          attempt.error = error;
          logger.log('warn', error);
          return { error };
        },
      ),
    };
    this.attempts.set(key, attempt);
    return attempt;
  }

  /** `strata image import --json containers-storage:ID` into this store; the manifest digest. */
  private async runImport(graphRoot: string, imageId: string): Promise<string> {
    const [cmd, ...args] = cliArgv([
      '--root',
      this.opts.storeRoot,
      'image',
      'import',
      '--json',
      '--storage-root',
      graphRoot,
      `containers-storage:${imageId}`,
    ]);
    const r = await execa(cmd, args, {
      reject: false,
      timeout: this.timeoutMs,
      maxBuffer: MAX_OUTPUT,
      stdin: 'ignore',
    });
    if (r.timedOut) throw new Error(`it took longer than ${this.timeoutMs / 1000} s and was stopped`);
    if (r.exitCode !== 0) {
      const why = r.stderr.trim().split('\n').slice(-3).join(' ') || `exit ${r.exitCode ?? r.signal}`;
      throw new Error(why);
    }
    let digest: unknown;
    try {
      digest = (JSON.parse(r.stdout) as { record?: { manifestDigest?: unknown } }).record?.manifestDigest;
    } catch {
      digest = undefined;
    }
    if (typeof digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(digest)) {
      throw new Error(`strata image import gave no manifest digest: ${r.stdout.slice(0, 200)}`);
    }
    return digest;
  }
}

const importers = new Map<string, ContainersStorageImporter>();

/** The daemon's importer for its store (one per store, so concurrent requests share imports). */
export function importerFor(storeRoot: string, logger: Logger): ContainersStorageImporter {
  let importer = importers.get(storeRoot);
  if (!importer) {
    importer = new ContainersStorageImporter({ storeRoot, logger });
    importers.set(storeRoot, importer);
  }
  return importer;
}
