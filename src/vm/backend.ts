// How a VM is started, reached and stopped, without the rest of strata knowing which hypervisor
// runs it: qemu on Linux (qemu.ts), vfkit on macOS (vfkit.ts). A backend turns a VmConfig into an
// argv, says how to reach the agent's byte stream, and how to ask the VM to stop.
// docs/architecture.md#vm-guests.
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

import { FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError } from '../errors.js';
import { AgentSession } from './agent-session.js';
import type { Hello } from './protocol.js';

export interface VmConfig {
  /** The VM's state directory: sockets, console log, pid files live here. */
  stateDir: string;
  kernel: string;
  initrd: string;
  cmdline: string;
  memoryMiB: number;
  cpus: number;
  /** A host directory the guest sees over virtio-fs (tag NATIVE_CONTRACT.vm.guest.sharesTag): the
   * VM host bind-mounts each -v source under it. qemu reaches it through virtiofsd's socket;
   * vfkit shares the directory itself. */
  shares?: { dir: string; socket: string };
}

/** The guest's architecture: Debian's names, as in the image script's --arch. */
export type GuestArch = 'amd64' | 'arm64';

/** $STRATA_VM_ARCH, else this machine's (Apple silicon and arm64 Linux: arm64). */
export function guestArch(env: NodeJS.ProcessEnv = process.env, hostArch: string = process.arch): GuestArch {
  const forced = env.STRATA_VM_ARCH;
  if (forced === 'amd64' || forced === 'arm64') return forced;
  if (forced) {
    throw new InvalidArgumentError(`STRATA_VM_ARCH=${forced}: the guest is amd64 or arm64`, {
      op: 'vm-start',
    });
  }
  return hostArch === 'arm64' ? 'arm64' : 'amd64';
}

export interface VmBackend {
  readonly name: 'qemu' | 'vfkit';
  /** The guest's console device, for the kernel's console= (ttyS0, ttyAMA0, hvc0). */
  readonly console: string;
  /** The hypervisor's executable, or a FailedPreconditionError naming what to install. */
  executable(): string;
  argv(cfg: VmConfig): string[];
  /** The unix socket the agent's stream is reached through (qemu: the chardev; vfkit: the vsock
   * bridge). */
  agentSocket(cfg: VmConfig): string;
  /** Ask the VM to stop (the agent's power-off is tried first by the caller); resolves when asked. */
  requestStop?(cfg: VmConfig): Promise<void>;
  /** How a VmConfig's shares reach the guest: through virtiofsd (qemu), or the hypervisor itself
   * (vfkit). */
  readonly sharing: 'virtiofsd' | 'native';
  /** The virtiofsd executable, when sharing is 'virtiofsd' and one is installed. */
  virtiofsd?(): string | undefined;
  /** 'running' | 'stopped' | other hypervisor words, when the backend can say. */
  state?(cfg: VmConfig): Promise<string>;
}

/** The kernel command line of a guest whose console is `console`. */
export function guestCmdline(console: string): string {
  return `console=${console} quiet panic=-1 loglevel=3`;
}

export const DEFAULT_CMDLINE = guestCmdline('ttyS0');

/** The kernel and initramfs must exist before a hypervisor is started for them. */
export function checkGuestFiles(cfg: Pick<VmConfig, 'kernel' | 'initrd'>): void {
  for (const [what, path] of [
    ['kernel', cfg.kernel],
    ['initramfs', cfg.initrd],
  ] as const) {
    if (!existsSync(path)) {
      throw new NotFoundError(`the VM ${what} ${path} is missing: run scripts/build-vm-image.sh`, {
        op: 'vm-start',
        path,
      });
    }
  }
}

/** The first of `candidates` that exists, else an error naming the package that provides it. */
export function findExecutable(candidates: string[], install: string): string {
  const dirs = (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':');
  for (const c of candidates) {
    if (c.includes('/')) {
      if (existsSync(c)) return c;
      continue;
    }
    for (const d of dirs) if (d && existsSync(`${d}/${c}`)) return `${d}/${c}`;
  }
  throw new FailedPreconditionError(`${candidates[0]} is not installed: ${install}`, { op: 'vm-start' });
}

/** Connects to a unix socket, retrying while it does not exist yet or refuses (the hypervisor is
 * starting), until `deadline` (ms since epoch). */
export async function connectWhenReady(
  path: string,
  deadline: number,
  alive: () => boolean,
): Promise<Socket> {
  for (;;) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const s = connect(path);
        s.once('connect', () => {
          s.removeAllListeners('error');
          resolve(s);
        });
        s.once('error', reject);
      });
    } catch (err) {
      if (!alive())
        throw new UnavailableError(`the VM exited before its agent socket ${path} was ready`, { cause: err });
      if (Date.now() > deadline)
        throw new UnavailableError(`the VM's agent socket ${path} never came up`, { cause: err });
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** The agent's stream and its hello. vfkit accepts on its socket at once but closes each
 * connection it cannot bridge to the guest's vsock port (the agent is not listening yet): a
 * stream that ends before the hello is tried again while the VM runs and helloMs has not passed
 * since the first try (each try waits up to helloMs for the hello). */
export async function connectAgent(
  path: string,
  opts: {
    helloMs: number;
    exited: () => boolean;
    stopping?: () => boolean;
    /** Each session as it is made (the caller closes it if it stops meanwhile). */
    session?: (agent: AgentSession) => void;
  },
): Promise<{ agent: AgentSession; hello: Hello }> {
  const deadline = Date.now() + opts.helloMs;
  for (;;) {
    const sock = await connectWhenReady(path, Date.now() + 15_000, () => !opts.exited());
    const agent = new AgentSession(sock, { helloTimeoutMs: opts.helloMs });
    opts.session?.(agent);
    try {
      return { agent, hello: await agent.start() };
    } catch (err) {
      sock.destroy();
      const early = (err as Error).message.startsWith('the VM agent went away');
      if (!early || opts.exited() || Date.now() > deadline || opts.stopping?.()) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
