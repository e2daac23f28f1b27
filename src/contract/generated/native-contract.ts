// Generated from src/contract/native-contract.json by scripts/gen-contract.mjs. Do not edit.
export const NATIVE_CONTRACT = {
  socket: { env: 'STRATA_SOCKET', default: '/run/strata/strata.sock' },
  daemonLog: { rootDefault: '/var/log/strata/daemon.log' },
  hook: {
    magic: 'STRATA-HOOK',
    version: 1,
    stages: ['createRuntime', 'createContainer', 'poststop'],
    maxState: 1048576,
    maxReply: 8192,
    readyTimeoutMs: 10000,
    ioTimeoutMs: 30000,
    timeoutEnv: 'STRATA_HOOK_TIMEOUT_MS',
    exit: { failed: 1, usage: 2, unreachable: 3, timeout: 4, imageMissing: 5, attachFailed: 6, badReply: 7 },
  },
  run: {
    version: '1',
    maxMessage: 1048576,
    maxHeader: 32,
    replyTimeoutMs: 120000,
    frontVerbs: ['run', 'started', 'exited', 'runtime'],
    daemonVerbs: ['exec', 'exit', 'fallback', 'serve', 'pass'],
    exitedKinds: ['code', 'signal', 'early'],
    forwardedSignals: ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR2', 'SIGALRM', 'SIGPIPE'],
    lostMessage: "lost the daemon connection; the container's record may be stale (strata ps)",
    lostBeforeStartMessage:
      "the container did not start: the strata daemon went away while starting it (see the daemon's log, by default /var/log/strata/daemon.log)",
  },
  runtime: {
    version: '1',
    runtimeEnv: 'STRATA_OCI_RUNTIME',
    confEnv: 'STRATA_RUNTIME_CONF',
    confDefault: '/etc/strata/runtime.conf',
    replyTimeoutMs: 30000,
    rootDir: 'strata-rootfs',
    failed: 1,
  },
  exit: { runFailed: 125, cannotExecute: 126, notFound: 127 },
} as const;
