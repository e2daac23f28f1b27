// Where the daemon listens and logs by default. The native executables have the same defaults
// compiled in (src/contract/native-contract.json), so both sides agree without configuration.
import { homedir } from 'node:os';
import { join } from 'node:path';

import { NATIVE_CONTRACT } from '../contract/generated/native-contract.js';

export const DEFAULT_SOCKET = NATIVE_CONTRACT.socket.default;
export const DEFAULT_ROOT_LOG = NATIVE_CONTRACT.daemonLog.rootDefault;

/** --socket > $STRATA_SOCKET > /run/strata/strata.sock */
export function resolveSocket(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return explicit || env[NATIVE_CONTRACT.socket.env] || DEFAULT_SOCKET;
}

/** --log-file > $STRATA_LOG_FILE > /var/log/strata/daemon.log for root > $XDG_STATE_HOME/strata/daemon.log. */
export function resolveLogFile(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return explicit;
  if (env.STRATA_LOG_FILE) return env.STRATA_LOG_FILE;
  if (process.getuid?.() === 0) return DEFAULT_ROOT_LOG;
  const state = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return join(state, 'strata', 'daemon.log');
}
