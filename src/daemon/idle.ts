// Idle exit for a daemon started on demand by the createRuntime hook. Such a daemon is born under
// the runtime's child subreaper (crun, runc, conmon), which may wait for it before exiting: it must
// go away by itself once it has nothing to serve. It counts as busy while it serves a container or
// has a client connection open (a hook request in flight), and leaves after `idleMs` without either.
export interface IdleWatch {
  stop(): void;
}

export interface IdleOptions {
  idleMs: number;
  /** True while anything is served or a request is in flight. */
  busy: () => boolean;
  /** Called once, from a timer: nothing was busy for idleMs. */
  onIdle: () => void;
  /** How often busy() is sampled. Default: idleMs / 10, between 10 and 250 ms. */
  intervalMs?: number;
  now?: () => number;
}

export function watchIdle(opts: IdleOptions): IdleWatch {
  const now = opts.now ?? Date.now;
  const interval = opts.intervalMs ?? Math.min(250, Math.max(10, opts.idleMs / 10));
  let lastBusy = now();
  const timer = setInterval(() => {
    if (opts.busy()) lastBusy = now();
    else if (now() - lastBusy >= opts.idleMs) {
      clearInterval(timer);
      opts.onIdle();
    }
  }, interval);
  return { stop: () => clearInterval(timer) };
}

/** `--exit-idle SECONDS` (fractions allowed, > 0) in milliseconds. */
export function parseExitIdle(value: string): number {
  const s = Number(value);
  if (value.trim() === '' || !Number.isFinite(s) || s <= 0) {
    throw new Error(`--exit-idle wants a positive number of seconds, not ${JSON.stringify(value)}`);
  }
  return Math.round(s * 1000);
}
