// The guest's kernel and initramfs: $STRATA_VM_IMAGE (a directory with vmlinuz and
// initramfs.img), else built once by scripts/build-vm-image.sh into a cache keyed by what went in
// (the agent binary, the script, the kernel release) and renamed into place, so a cached
// directory is always complete; a changed agent gets a new key.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { execa } from 'execa';

import { FailedPreconditionError } from '../errors.js';
import { agentExecutable, vmImageScript } from '../executables.js';
import { lockFile } from '../store/lock.js';

export interface VmImage {
  dir: string;
  kernel: string;
  initrd: string;
}

export const DEFAULT_VM_CACHE = '/var/cache/strata/vm';

function paths(dir: string): VmImage {
  return { dir, kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initramfs.img') };
}

/** The newest Debian cloud kernel installed in /boot. */
export function cloudKernelRelease(boot = '/boot'): string {
  const found = existsSync(boot)
    ? readdirSync(boot)
        .filter((n) => /^vmlinuz-.*-cloud-amd64$/.test(n))
        .map((n) => n.slice('vmlinuz-'.length))
        .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))
    : [];
  const release = found.at(-1);
  if (!release) {
    throw new FailedPreconditionError(
      'no Debian cloud kernel in /boot: apt-get install linux-image-cloud-amd64',
      {
        op: 'vm-image',
      },
    );
  }
  return release;
}

export async function ensureVmImage(env: NodeJS.ProcessEnv = process.env): Promise<VmImage> {
  if (env.STRATA_VM_IMAGE) return paths(env.STRATA_VM_IMAGE);
  const cache = env.STRATA_VM_CACHE ?? DEFAULT_VM_CACHE;
  const agent = agentExecutable();
  const script = vmImageScript();
  const release = cloudKernelRelease();
  const key = createHash('sha256')
    .update(readFileSync(agent))
    .update(readFileSync(script))
    .update(release)
    .digest('hex')
    .slice(0, 16);
  const dir = join(cache, `${release}-${key}`);
  if (existsSync(dir)) return paths(dir);
  mkdirSync(cache, { recursive: true });
  const lock = await lockFile(join(cache, '.build.lock'), 'exclusive');
  try {
    if (existsSync(dir)) return paths(dir);
    const tmp = join(cache, `.tmp-${key}-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    try {
      await execa(script, [tmp, agent, release], { stdio: ['ignore', 'ignore', 'pipe'] });
      renameSync(tmp, dir);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      const stderr = (err as { stderr?: string }).stderr ?? '';
      throw new FailedPreconditionError(`building the VM image failed: ${stderr.trim() || String(err)}`, {
        op: 'vm-image',
        cause: err,
      });
    }
    return paths(dir);
  } finally {
    await lock.release();
  }
}
