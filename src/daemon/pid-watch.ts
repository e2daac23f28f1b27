// Watching a process that is not our child: a container's init between the createRuntime and
// createContainer hooks. Node cannot poll a pidfd, so this polls /proc/<pid>/stat and compares
// the start time, which also tells a dead process from a reused pid.
import { readFileSync } from 'node:fs';

/** Field 22 (starttime) of /proc/<pid>/stat, or undefined when the process is gone or a zombie. */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: fields after it follow the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return fields[19];
}

export interface PidWatch {
  stop(): void;
}

/** Calls onExit once when `pid` (as it is now) is gone; polls every intervalMs. */
export function watchPid(pid: number, onExit: () => void, intervalMs = 200): PidWatch {
  const start = processStartTime(pid);
  let stopped = false;
  const check = (): void => {
    if (stopped || (start !== undefined && processStartTime(pid) === start)) return;
    stopped = true;
    clearInterval(timer);
    onExit();
  };
  const timer = setInterval(check, intervalMs);
  timer.unref();
  if (start === undefined) queueMicrotask(check);
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
