// The daemon must be up before the runtime starts: the createRuntime hook can start one too, but
// then the daemon is born inside the runtime's world — crun is a child subreaper, so the daemon
// becomes crun's child (and crun waits for it), and with the cgroup workaround it would live on
// in crun's private mount namespace. Started from here it is our child, in its own session, and
// long-lived (no --exit-idle): later runs reuse it.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';

import { serviceDaemonArgv } from '../executables.js';
import { UnavailableError } from '../errors.js';

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Resolves once a daemon answers on socketPath, starting one (detached) when none does. */
export async function ensureDaemon(storeRoot: string, socketPath: string, timeoutMs = 20_000): Promise<void> {
  if (await answers(socketPath)) return;
  const [cmd, ...args] = serviceDaemonArgv({ storeRoot, socketPath });
  const child = spawn(cmd, args, { detached: true, stdio: 'ignore' });
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = `exit ${code ?? signal}`));
  child.once('error', (err) => (exited = err.message));
  child.unref();
  const until = Date.now() + timeoutMs;
  for (;;) {
    await new Promise((r) => setTimeout(r, 10));
    if (await answers(socketPath)) return;
    // Exit 0 is another daemon winning the start race; keep waiting for it to answer.
    if ((exited && exited !== 'exit 0') || Date.now() > until) {
      throw new UnavailableError(
        `cannot start the strata daemon for ${socketPath} (${exited ?? 'no answer'}); its log says why (strata daemon --help)`,
        { op: 'run' },
      );
    }
  }
}
