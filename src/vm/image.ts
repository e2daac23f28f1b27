// The guest's kernel and initramfs: $STRATA_VM_IMAGE (a directory with vmlinuz and
// initramfs.img), else built once by scripts/build-vm-image.sh into a cache keyed by what went in
// (the arch, the agent binary, the script, the kernel release) and renamed into place, so a cached
// directory is always complete; a changed agent gets a new key. amd64 takes the kernel installed
// in /boot; arm64 downloads Debian's linux-image-cloud-arm64 (the script picks the release apt's
// lists name, so a newer one in the archive is only taken when the cache entry is removed).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { execa } from 'execa';

import { FailedPreconditionError } from '../errors.js';
import { agentExecutable, vmImageScript } from '../executables.js';
import { lockFile } from '../store/lock.js';
import { guestArch, type GuestArch } from './backend.js';

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

/** The image script's arguments and the cache entry's name for a guest of `arch`. */
export function vmImageBuild(arch: GuestArch): { args: (out: string) => string[]; name: string } {
  const agent = agentExecutable(arch);
  const script = vmImageScript();
  // arm64's kernel comes from Debian's archive: the script names its release.
  const release = arch === 'amd64' ? cloudKernelRelease() : 'debian-arm64';
  const key = createHash('sha256')
    .update(arch)
    .update(readFileSync(agent))
    .update(readFileSync(script))
    .update(release)
    .digest('hex')
    .slice(0, 16);
  return {
    args: (out) => ['--arch', arch, out, agent, ...(arch === 'amd64' ? [release] : [])],
    name: `${release}-${key}`,
  };
}

export async function ensureVmImage(
  env: NodeJS.ProcessEnv = process.env,
  arch: GuestArch = guestArch(env),
): Promise<VmImage> {
  if (env.STRATA_VM_IMAGE) return paths(env.STRATA_VM_IMAGE);
  const cache = env.STRATA_VM_CACHE ?? DEFAULT_VM_CACHE;
  const script = vmImageScript();
  const build = vmImageBuild(arch);
  const dir = join(cache, build.name);
  const key = build.name.slice(-16);
  if (existsSync(dir)) return paths(dir);
  mkdirSync(cache, { recursive: true });
  const lock = await lockFile(join(cache, '.build.lock'), 'exclusive');
  try {
    if (existsSync(dir)) return paths(dir);
    const tmp = join(cache, `.tmp-${key}-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    try {
      await execa(script, build.args(tmp), { stdio: ['ignore', 'ignore', 'pipe'] });
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
