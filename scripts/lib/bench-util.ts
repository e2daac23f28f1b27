// Small helpers shared by the benchmark scripts: timing, disk usage, temp dirs, mount cleanup.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { unmountAll } from '../../test/fixtures/mounts.js';
import { run } from '../../test/fixtures/run.js';

export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, value };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Bytes allocated on disk under `path` (hard links counted once), as du reports them. */
export async function diskBytes(path: string): Promise<number> {
  const { stdout } = await run('du', ['-s', '--block-size=1', path]);
  return Number(stdout.split(/\s/)[0]);
}

/** Apparent size: the sum of file sizes, hard links counted once. */
export async function apparentBytes(path: string): Promise<number> {
  const { stdout } = await run('du', ['-s', '--block-size=1', '--apparent-size', path]);
  return Number(stdout.split(/\s/)[0]);
}

/** A temp dir removed (after unmounting anything left inside) by the returned cleanup. */
export async function benchDir(
  prefix: string,
  parent = '/var/tmp',
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(parent, prefix));
  return {
    dir,
    cleanup: async () => {
      await unmountAll(dir);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The 1, 5 and 15 minute load averages, as /proc/loadavg has them ("4.83 5.12 3.90"). */
export async function loadAverage(): Promise<string> {
  return (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
}

export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

export function secs(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}
