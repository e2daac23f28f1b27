// `strata vm serve`: the VM host process (host.ts) for one state directory, with the backend of
// this platform (vfkit on macOS, qemu elsewhere) and the cached guest image (image.ts).
import { mkdirSync } from 'node:fs';

import { limitServerHeap } from '../mount/serve.js';
import { guestArch, guestCmdline, type GuestArch, type VmBackend } from './backend.js';
import { VmHost } from './host.js';
import { ensureVmImage } from './image.js';
import { QemuBackend } from './qemu.js';
import { VfkitBackend } from './vfkit.js';

export function platformBackend(platform = process.platform, arch: GuestArch = guestArch()): VmBackend {
  return platform === 'darwin' ? new VfkitBackend() : new QemuBackend({ arch });
}

export async function serveVm(stateDir: string, storeRoot: string): Promise<void> {
  limitServerHeap();
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const env = process.env;
  const arch = guestArch(env);
  const image = await ensureVmImage(env, arch);
  const backend = platformBackend(process.platform, arch);
  const host = new VmHost({
    config: {
      stateDir,
      kernel: image.kernel,
      initrd: image.initrd,
      cmdline: env.STRATA_VM_CMDLINE ?? guestCmdline(backend.console),
      memoryMiB: Number(env.STRATA_VM_MEMORY_MIB ?? 512),
      cpus: Number(env.STRATA_VM_CPUS ?? 1),
    },
    backend,
    storeRoot,
  });
  const stop = () => void host.stop();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await host.start();
  await host.stopped;
  process.off('SIGTERM', stop);
  process.off('SIGINT', stop);
}
