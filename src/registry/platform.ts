// Choosing one image of a multi-platform index, as containerd's platform matcher does: os and
// architecture must match; a variant asked for is matched exactly first, then the compatible
// lower ones (arm v8 runs v7, v6, v5 images; amd64 v3 runs v2 and v1), and an entry without a
// variant matches any. Without a variant asked for, the host's default applies (arm64 -> v8,
// arm -> v7). Architecture names are normalised (x86_64 -> amd64, aarch64 -> arm64).
import { arch, platform as osPlatform } from 'node:os';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import type { Platform } from '../store/source/types.js';

const ARCH_ALIASES: Record<string, string> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  aarch64: 'arm64',
  armhf: 'arm',
  armel: 'arm',
  i386: '386',
  ia32: '386',
  x64: 'amd64',
};

const DEFAULT_VARIANT: Record<string, string> = { arm64: 'v8', arm: 'v7' };

/** Variants an image may have to run on `variant` of `architecture`, best first. */
function compatibleVariants(architecture: string, variant: string): string[] {
  if (architecture === 'arm') {
    const n = Number(variant.replace(/^v/, ''));
    if (Number.isInteger(n)) return [8, 7, 6, 5].filter((v) => v <= n).map((v) => `v${v}`);
  }
  if (architecture === 'arm64') return [variant, 'v8'].filter((v, i, a) => a.indexOf(v) === i);
  if (architecture === 'amd64') {
    const n = Number(variant.replace(/^v/, ''));
    if (Number.isInteger(n)) return [4, 3, 2, 1].filter((v) => v <= n).map((v) => `v${v}`);
  }
  return [variant];
}

export function normalizePlatform(p: Platform): Platform {
  const architecture = ARCH_ALIASES[p.architecture.toLowerCase()] ?? p.architecture.toLowerCase();
  const os = p.os.toLowerCase();
  const variant = p.variant?.toLowerCase();
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** "linux/arm64/v8" (InvalidArgumentError otherwise). */
export function parsePlatform(text: string): Platform {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[A-Za-z0-9_.-]+$/.test(p))) {
    throw new InvalidArgumentError(`invalid platform ${JSON.stringify(text)}: give os/arch[/variant]`, {
      op: 'pull',
    });
  }
  return normalizePlatform({ os: parts[0], architecture: parts[1], variant: parts[2] });
}

export function hostPlatform(): Platform {
  return normalizePlatform({ os: osPlatform(), architecture: arch() });
}

export function platformName(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? '/' + p.variant : ''}`;
}

export interface PlatformEntry {
  platform?: { os: string; architecture: string; variant?: string };
}

/** The best entry for `want`, or NotFoundError listing what the index has. */
export function selectPlatform<T extends PlatformEntry>(entries: T[], want: Platform, what: string): T {
  const w = normalizePlatform(want);
  const variant = w.variant ?? DEFAULT_VARIANT[w.architecture];
  const order = variant ? compatibleVariants(w.architecture, variant) : [];
  let best: T | undefined;
  let bestRank = Infinity;
  for (const e of entries) {
    if (!e.platform) continue;
    const p = normalizePlatform(e.platform);
    if (p.os !== w.os || p.architecture !== w.architecture) continue;
    let rank: number;
    if (p.variant === undefined)
      rank = order.length; // any variant; after exact ones
    else if (variant === undefined) rank = order.length + 1;
    else {
      const i = order.indexOf(p.variant);
      if (i < 0) continue;
      rank = i;
    }
    if (rank < bestRank) {
      best = e;
      bestRank = rank;
    }
  }
  if (!best) {
    const have = entries.map((e) => (e.platform ? platformName(e.platform) : 'unspecified')).join(', ');
    throw new NotFoundError(`${what} has no image for ${platformName(w)} (it has: ${have || 'none'})`, {
      op: 'pull',
    });
  }
  return best;
}
