// The vfkit backend (macOS, Apple's Virtualization.framework): vfkit is spawned with the kernel
// and initramfs (--bootloader linux; on arm64 VZ boots only an uncompressed `Image`, which
// scripts/build-vm-image.sh --arch arm64 writes), the console on a virtio-serial log file (hvc0),
// the agent's stream on a virtio-vsock device whose host end vfkit exposes as a unix socket
// (`connect`: vfkit listens there and connects each client to the guest agent's vsock port),
// and its REST API on a unix socket for state and stop. The com.apple.security.virtualization
// entitlement is vfkit's. Manual check on a Mac: docs/vm-mac-check.md.
import { request } from 'node:http';
import { join } from 'node:path';

import { NATIVE_CONTRACT } from '../contract/generated/native-contract.js';
import { UnavailableError } from '../errors.js';
import { findExecutable, type VmBackend, type VmConfig } from './backend.js';

export const VSOCK_PORT = NATIVE_CONTRACT.vm.vsockPort;

function restSocket(cfg: VmConfig): string {
  return join(cfg.stateDir, 'rest.sock');
}

/** One REST call to vfkit over its unix socket; resolves with the parsed JSON body (or {}). */
export function restCall(
  socketPath: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      {
        socketPath,
        method,
        path,
        headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
        timeout: 5000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > 64 * 1024) req.destroy(new Error('vfkit REST answer over 64 KiB'));
          else chunks.push(c);
        });
        res.on('end', () => {
          if ((res.statusCode ?? 500) >= 300) {
            reject(
              new UnavailableError(`vfkit ${method} ${path}: HTTP ${res.statusCode}`, { op: 'vm-rest' }),
            );
            return;
          }
          const text = Buffer.concat(chunks).toString('utf8').trim();
          try {
            resolve(text ? JSON.parse(text) : {});
          } catch {
            reject(
              new UnavailableError(`vfkit ${method} ${path}: not JSON: ${text.slice(0, 100)}`, {
                op: 'vm-rest',
              }),
            );
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) =>
      reject(
        new UnavailableError(`vfkit ${method} ${path} failed: ${err.message}`, { op: 'vm-rest', cause: err }),
      ),
    );
    req.end(data);
  });
}

export class VfkitBackend implements VmBackend {
  readonly name = 'vfkit' as const;
  readonly sharing = 'native' as const;
  /** VZ's console is a virtio console (the virtio-serial device below). */
  readonly console = 'hvc0';
  private readonly binary?: string;

  constructor(opts: { binary?: string } = {}) {
    this.binary = opts.binary ?? process.env.STRATA_VM_VFKIT;
  }

  executable(): string {
    return findExecutable(
      this.binary ? [this.binary] : ['vfkit'],
      'brew install vfkit (or set $STRATA_VM_VFKIT)',
    );
  }

  agentSocket(cfg: VmConfig): string {
    return join(cfg.stateDir, 'agent.sock');
  }

  argv(cfg: VmConfig): string[] {
    return [
      this.executable(),
      '--cpus',
      String(cfg.cpus),
      '--memory',
      String(cfg.memoryMiB),
      '--bootloader',
      `linux,kernel=${cfg.kernel},initrd=${cfg.initrd},cmdline="${cfg.cmdline}"`,
      '--device',
      `virtio-serial,logFilePath=${join(cfg.stateDir, 'console.log')}`,
      '--device',
      // `connect`: vfkit listens on socketURL and connects each client to the guest's port, where
      // the agent listens (`listen` is the other way round: the guest connects out).
      `virtio-vsock,port=${VSOCK_PORT},socketURL=${this.agentSocket(cfg)},connect`,
      '--restful-uri',
      `unix://${restSocket(cfg)}`,
      ...(cfg.shares
        ? ['--device', `virtio-fs,sharedDir=${cfg.shares.dir},mountTag=${NATIVE_CONTRACT.vm.guest.sharesTag}`]
        : []),
    ];
  }

  /** vfkit's words: VirtualMachineStateRunning, ...Stopped, ...Paused, ... */
  async state(cfg: VmConfig): Promise<string> {
    const body = (await restCall(restSocket(cfg), 'GET', '/vm/state')) as { state?: unknown };
    if (typeof body.state !== 'string')
      throw new UnavailableError('vfkit /vm/state without a state', { op: 'vm-rest' });
    return body.state;
  }

  async requestStop(cfg: VmConfig): Promise<void> {
    await restCall(restSocket(cfg), 'POST', '/vm/state', { state: 'Stop' });
  }
}
