// Watching a process that is not our child: a container's init between the createRuntime and
// createContainer hooks. Node cannot poll a pidfd, so this polls /proc/<pid>/stat and compares
// the start time, which also tells a dead process from a reused pid.
import { liveStartTime } from '../store/holder.js';

export interface PidWatch {
  stop(): void;
}

/**
 * Calls onExit once when `pid` (as it is now, or as it was when its start time `start` was read)
 * is gone; polls every intervalMs. A `start` read earlier names the process the caller meant even
 * if it ended (and its pid was reused) before the watch began.
 */
export function watchPid(
  pid: number,
  onExit: () => void,
  intervalMs = 200,
  start: string | undefined = liveStartTime(pid),
): PidWatch {
  let stopped = false;
  const check = (): void => {
    if (stopped || (start !== undefined && liveStartTime(pid) === start)) return;
    stopped = true;
    clearInterval(timer);
    onExit();
  };
  const timer = setInterval(check, intervalMs);
  timer.unref();
  queueMicrotask(check);
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
