// The qemu backend (Linux): -accel kvm when /dev/kvm really works, else TCG; the kernel and
// initramfs booted directly; one virtio-serial port (named by the contract) whose chardev is a
// unix socket qemu listens on; the serial console to a log file. ENVIRONMENT facts: PVM "KVM"
// (kvm_pvm) cannot run a stock kernel, so it counts as no KVM.
import { closeSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';

import { NATIVE_CONTRACT } from '../contract/generated/native-contract.js';
import { findExecutable, guestArch, type GuestArch, type VmBackend, type VmConfig } from './backend.js';

export type Accel = 'kvm' | 'tcg';

/** kvm when /dev/kvm opens read-write and is not PVM; $STRATA_VM_ACCEL overrides. */
export function detectAccel(env: NodeJS.ProcessEnv = process.env): Accel {
  const forced = env.STRATA_VM_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return forced;
  if (existsSync('/sys/module/kvm_pvm')) return 'tcg';
  try {
    closeSync(openSync('/dev/kvm', 'r+'));
    return 'kvm';
  } catch {
    return 'tcg';
  }
}

export class QemuBackend implements VmBackend {
  readonly name = 'qemu' as const;
  readonly sharing = 'virtiofsd' as const;
  readonly accel: Accel;
  /** amd64: q35 with the 16550 console (ttyS0); arm64: the `virt` board with its PL011 (ttyAMA0). */
  readonly arch: GuestArch;
  readonly console: string;
  private readonly binary?: string;

  constructor(opts: { accel?: Accel; binary?: string; arch?: GuestArch } = {}) {
    this.arch = opts.arch ?? guestArch();
    // KVM only runs a guest of this machine's own architecture.
    this.accel = opts.accel ?? (this.arch === guestArch({}) ? detectAccel() : 'tcg');
    this.binary = opts.binary ?? process.env.STRATA_VM_QEMU;
    this.console = this.arch === 'arm64' ? 'ttyAMA0' : 'ttyS0';
  }

  executable(): string {
    return findExecutable(
      this.binary ? [this.binary] : [this.arch === 'arm64' ? 'qemu-system-aarch64' : 'qemu-system-x86_64'],
      `apt-get install ${this.arch === 'arm64' ? 'qemu-system-arm' : 'qemu-system-x86'} (or set $STRATA_VM_QEMU)`,
    );
  }

  /** The board and CPU: under TCG, arm64's `max` CPU with pointer authentication's cheap
   * (impdef) algorithm, which emulates several times faster than the architected one. */
  private machine(): string[] {
    if (this.arch === 'arm64') {
      return [
        '-machine',
        'virt',
        '-accel',
        this.accel,
        '-cpu',
        this.accel === 'kvm' ? 'host' : 'max,pauth-impdef=on',
      ];
    }
    return ['-machine', 'q35', '-accel', this.accel, '-cpu', this.accel === 'kvm' ? 'host' : 'max'];
  }

  agentSocket(cfg: VmConfig): string {
    return join(cfg.stateDir, 'agent.sock');
  }

  argv(cfg: VmConfig): string[] {
    return [
      this.executable(),
      '-nodefaults',
      '-no-user-config',
      '-nographic',
      '-no-reboot',
      ...this.machine(),
      '-m',
      String(cfg.memoryMiB),
      '-smp',
      String(cfg.cpus),
      '-kernel',
      cfg.kernel,
      '-initrd',
      cfg.initrd,
      '-append',
      cfg.cmdline,
      '-serial',
      `file:${join(cfg.stateDir, 'console.log')}`,
      '-device',
      'virtio-serial-pci',
      '-chardev',
      `socket,path=${this.agentSocket(cfg)},server=on,wait=off,id=agent`,
      '-device',
      `virtserialport,chardev=agent,name=${NATIVE_CONTRACT.vm.portName}`,
      '-pidfile',
      join(cfg.stateDir, 'hypervisor.pid'),
      ...(cfg.shares
        ? [
            // vhost-user needs the guest's memory shared with virtiofsd.
            '-object',
            `memory-backend-memfd,id=mem,size=${cfg.memoryMiB}M,share=on`,
            '-numa',
            'node,memdev=mem',
            '-chardev',
            `socket,id=shares,path=${cfg.shares.socket}`,
            '-device',
            `vhost-user-fs-pci,chardev=shares,tag=${NATIVE_CONTRACT.vm.guest.sharesTag}`,
          ]
        : []),
    ];
  }

  /** virtiofsd (Debian: /usr/lib/qemu/virtiofsd from qemu-system-common, or the virtiofsd
   * package's /usr/libexec/virtiofsd), or undefined: then -v is refused. */
  virtiofsd(): string | undefined {
    const candidates = [process.env.STRATA_VM_VIRTIOFSD, '/usr/libexec/virtiofsd', '/usr/lib/qemu/virtiofsd'];
    return candidates.find((c): c is string => c !== undefined && c !== '' && existsSync(c));
  }
}
