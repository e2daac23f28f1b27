// Output helpers for CLI entry points (the only code that prints): JSON, aligned tables, sizes,
// a progress bar on a TTY (silent otherwise), and one-line errors with an exit code per kind.
import type CliProgress from 'cli-progress';
import { createRequire } from 'node:module';

import { StrataError, type ErrorKind } from '../errors.js';

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function printTable(headers: string[], rows: string[][]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  process.stdout.write([line(headers), ...rows.map(line)].join('\n') + '\n');
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

export interface Progress {
  update(done: number, total: number, label: string): void;
  note(message: string): void;
  stop(): void;
}

/** A bar on stderr when it is a TTY and --json is off; otherwise nothing at all. */
export function progress(enabled = true): Progress {
  if (!enabled || !process.stderr.isTTY) return { update() {}, note() {}, stop() {} };
  // Loaded only for a bar: every command imports this file, and cli-progress costs ~10 ms to load.
  const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof CliProgress;
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: '{bar} {percentage}% | {label}',
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, label) {
      if (!started) {
        bar.start(total, done, { label });
        started = true;
      } else bar.setTotal(total);
      bar.update(done, { label });
    },
    note(message) {
      process.stderr.write(message + '\n');
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/** Exit codes by error kind; 1 is left for "the command ran and found problems" (fsck). */
export const EXIT_CODES: Record<ErrorKind, number> = {
  InvalidArgument: 2,
  NotFound: 3,
  AlreadyExists: 4,
  FailedPrecondition: 5,
  Unavailable: 6,
  DataLoss: 7,
};

export function exitCodeFor(err: unknown): number {
  return err instanceof StrataError ? EXIT_CODES[err.kind] : 70;
}

export function printError(err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`strata: ${message}\n`);
  if (!(err instanceof StrataError) && process.env.STRATA_DEBUG && err instanceof Error) {
    process.stderr.write(`${err.stack}\n`);
  }
}
