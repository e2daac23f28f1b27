// The store's free-space floor: an import refuses to start, or stops, rather than take the store's
// filesystem under it. A decompression bomb (or just a big image) then fails with a clear error
// instead of filling the disk that the rest of the system (logs, the daemon, package managers,
// other imports) needs.
//
// Default 1 GiB, an absolute amount rather than 5%: what must keep working when the disk is
// nearly full needs a fixed amount, not a share of the disk (5% of 2 TB idles 100 GiB, 5% of a
// 4 GiB store leaves 200 MiB); ext4 already keeps its own 5% root reserve, and the floor is
// measured on the space unprivileged users can have (f_bavail), so that reserve stays too.
// `--min-free` / STRATA_MIN_FREE take bytes ("512M", "2G", "0") or a share ("5%").
import { statfs } from 'node:fs/promises';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';

export const DEFAULT_MIN_FREE = '1G';
/** How many bytes may pass between two statfs calls while the estimate is well above the floor. */
const RECHECK_EVERY = 16 * 2 ** 20;

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

export type MinFree = { bytes: number } | { percent: number };

/** "1G", "512M", "1048576", "5%" (InvalidArgumentError otherwise). */
export function parseMinFree(value: string | number): MinFree {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return { bytes: value };
  const m = /^\s*(\d+(?:\.\d+)?)\s*(%|[KMGT]?)(?:i?B)?\s*$/i.exec(String(value));
  if (m && m[2] === '%' && Number(m[1]) <= 100) return { percent: Number(m[1]) };
  if (m && m[2] !== '%') return { bytes: Math.round(Number(m[1]) * UNITS[m[2].toUpperCase()]) };
  throw new InvalidArgumentError(
    `free-space floor ${JSON.stringify(value)}: give bytes (512M, 2G) or a share of the filesystem (5%)`,
    { op: 'import' },
  );
}

/** "640 KiB", "8 MiB", "7.9 MiB": precise enough to tell the free space from the floor. */
function mib(n: number): string {
  if (n < 2 ** 20) return `${Math.ceil(n / 1024)} KiB`;
  const m = n / 2 ** 20;
  return `${Number.isInteger(m) ? m : m.toFixed(1)} MiB`;
}

export class SpaceFloor {
  private avail = 0;
  private floor = 0;
  /** Bytes counted since the last statfs. */
  private since = 0;

  private constructor(
    private readonly root: string,
    private readonly minFree: MinFree,
    private readonly setting: string,
  ) {}

  /**
   * Check that `need` bytes (a lower bound of what the import writes) fit above the floor;
   * FailedPreconditionError otherwise.
   */
  static async start(
    root: string,
    minFree: string | number,
    need: number,
    what: string,
  ): Promise<SpaceFloor> {
    const floor = new SpaceFloor(root, parseMinFree(minFree), String(minFree));
    await floor.measure();
    if (floor.avail - need < floor.floor) throw floor.error(need, `${what}: `);
    return floor;
  }

  private async measure(): Promise<void> {
    const st = await statfs(this.root);
    this.avail = st.bavail * st.bsize;
    this.floor =
      'bytes' in this.minFree
        ? this.minFree.bytes
        : Math.ceil((st.blocks * st.bsize * this.minFree.percent) / 100);
    this.since = 0;
  }

  /**
   * Count `bytes` about to be written (an upper bound: layer bytes, before dedup). undefined when
   * the estimate is well above the floor, else a statfs that rejects with
   * FailedPreconditionError when the filesystem is under it. Bytes counted but not yet written
   * when statfs runs are not carried over: the floor can be undershot by what is in flight.
   */
  consume(bytes: number): Promise<void> | undefined {
    this.since += bytes;
    if (this.avail - this.since >= this.floor && this.since < RECHECK_EVERY) return undefined;
    // The estimate says "too close" or is stale: ask the filesystem (other writers, dedup).
    return this.measure().then(() => {
      if (this.avail < this.floor) throw this.error(0);
    });
  }

  private error(need: number, prefix = ''): FailedPreconditionError {
    const needs = need ? `, and this import needs at least ${mib(need)} more` : '';
    return new FailedPreconditionError(
      `${prefix}the store's filesystem (${this.root}) has ${mib(this.avail)} free${needs}: the import would take it ` +
        `under its free-space floor of ${mib(this.floor)} (--min-free or STRATA_MIN_FREE, now ${this.setting})`,
      { op: 'import', path: this.root },
    );
  }
}
