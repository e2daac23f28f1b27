// crun 1.8 refuses this host's hybrid cgroup layout (docs/architecture.md#host-facts); it works in a mount
// namespace whose /sys/fs/cgroup is a pure cgroup2 mount. Making that namespace for every
// container (unshare + mount) costs 3 to 10 ms — mounting cgroup2 waits for the cgroups of
// containers that just ended to go offline. The daemon instead keeps one such namespace alive,
// held by a tiny shell, and the front end enters it (setns) before it execs crun.
//
// The namespace's mounts are slaves of the host's: mounts made on the host later (bind-mount
// sources, new filesystems) still show up in it, and nothing made in it reaches the host. The
// holder reads its stdin, a pipe from the daemon: when the daemon dies, however it dies, the
// holder sees EOF and leaves, and the namespace goes with it.
import { spawn, type ChildProcess } from 'node:child_process';

import { FailedPreconditionError } from '../errors.js';

const HOLDER_SCRIPT = 'mount -t cgroup2 none /sys/fs/cgroup && echo ready && read _';

export class CgroupNamespace {
  private holder?: ChildProcess;
  private ready?: Promise<string>;

  constructor(private readonly unshare: string) {}

  /** The path of the namespace (/proc/PID/ns/mnt), starting its holder on first use. */
  path(): Promise<string> {
    const h = this.holder;
    if (this.ready && h && h.exitCode === null && h.signalCode === null) {
      return this.ready;
    }
    this.ready = this.start();
    return this.ready;
  }

  private start(): Promise<string> {
    const child = spawn(this.unshare, ['-m', '--propagation', 'slave', '/bin/sh', '-c', HOLDER_SCRIPT], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.holder = child;
    return new Promise<string>((resolve, reject) => {
      let out = '';
      let err = '';
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready\n')) resolve(`/proc/${child.pid}/ns/mnt`);
      });
      child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      child.once('error', (e) =>
        reject(new FailedPreconditionError(`cannot start ${this.unshare}: ${e.message}`)),
      );
      child.once('exit', (code, signal) =>
        reject(
          new FailedPreconditionError(
            `the cgroup2 namespace crun needs on this host could not be made (${this.unshare} ${code ?? signal}): ${err.trim()}`,
          ),
        ),
      );
    });
  }

  /** Lets the holder leave (its stdin closes); resolves once it has: the namespace is gone. */
  async stop(): Promise<void> {
    const h = this.holder;
    this.holder = undefined;
    this.ready = undefined;
    if (!h || h.exitCode !== null || h.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => h.once('exit', () => resolve()));
    h.stdin?.end();
    await exited;
  }
}
