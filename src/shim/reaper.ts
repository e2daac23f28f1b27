// Exits of task processes. runc create/exec exit once the container's process runs; that process
// is then an orphan, reparented to the daemon because the daemon is a child subreaper
// (PR_SET_CHILD_SUBREAPER, set when the first task is created). Each one is watched through a
// pidfd (immune to pid reuse) and reaped with waitid(P_PIDFD) when SIGCHLD arrives. A slow
// safety sweep covers a SIGCHLD that came before the watch began.
import { closeSync } from 'node:fs';

import { constants, native, type ChildExit } from '../native-addon.js';

export interface Exit {
  pid: number;
  /** As containerd reports it: the exit code, or 128 + the signal. */
  status: number;
  at: Date;
}

export function exitStatus(e: ChildExit): number {
  return e.code === constants.CLD_EXITED ? e.status : 128 + e.status;
}

interface Watch {
  pid: number;
  pidfd: number;
  onExit: (exit: Exit) => void;
}

export class Reaper {
  private readonly watches = new Map<number, Watch>();
  private installed = false;
  private sweep?: NodeJS.Timeout;
  private readonly onSignal = (): void => this.check();

  constructor(private readonly sweepMs = 1000) {}

  /** Become the subreaper (once) and listen for SIGCHLD. */
  install(): void {
    if (this.installed) return;
    native.prctlSetChildSubreaper(true);
    process.on('SIGCHLD', this.onSignal);
    this.installed = true;
  }

  /** Watches `pid` (an orphan of ours by now); onExit runs once. Throws ESRCH if it is gone. */
  watch(pid: number, onExit: (exit: Exit) => void): void {
    this.install();
    const pidfd = native.pidfdOpen(pid);
    this.watches.set(pidfd, { pid, pidfd, onExit });
    if (!this.sweep) {
      this.sweep = setInterval(() => this.check(), this.sweepMs);
      this.sweep.unref();
    }
    this.check();
  }

  get size(): number {
    return this.watches.size;
  }

  check(): void {
    for (const w of [...this.watches.values()]) {
      let e: ChildExit | null;
      try {
        e = native.waitidPidfd(w.pidfd);
      } catch {
        continue; // ECHILD: not reparented to us yet
      }
      if (!e) continue;
      this.watches.delete(w.pidfd);
      closeSync(w.pidfd);
      w.onExit({ pid: w.pid, status: exitStatus(e), at: new Date() });
    }
    if (this.watches.size === 0 && this.sweep) {
      clearInterval(this.sweep);
      this.sweep = undefined;
    }
  }

  stop(): void {
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = undefined;
    if (this.installed) process.off('SIGCHLD', this.onSignal);
    for (const w of this.watches.values()) closeSync(w.pidfd);
    this.watches.clear();
  }
}
