// config.json synthesis: an image config plus the user's options -> the OCI runtime config, the
// way podman 4.3 builds it (see defaults.ts for what differs and why). Pure apart from reading
// the host's hostname and /proc/self/limits when the options do not supply them.
import { hostname as hostHostname, constants } from 'node:os';
import { posix } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import type { Mount, Namespace, RuntimeConfig } from '../schema/generated/runtime-config.js';
import { buildCapabilities } from './capabilities.js';
import {
  CONTAINER_ENV_VALUE,
  DEFAULT_PATH,
  MASKED_PATHS,
  OCI_VERSION,
  READONLY_PATHS,
  READ_ONLY_TMPFS,
  STOP_SIGNAL_ANNOTATION,
  defaultMounts,
  hostRlimits,
  pidsLimit,
} from './defaults.js';
import { containerPath, type MountOption, type RunOptions } from './options.js';
import { DEFAULT_SECCOMP_PROFILE, seccompFor } from './seccomp.js';
import { SECCOMP_BPF_ANNOTATION } from './annotations.js';
import { resolveUser, type ImageFileLookup } from './user.js';
import { validate } from '../schema/validate.js';

/** The fields of an OCI image config's `config` that shape a container (docker writes null for empty lists). */
export interface ImageExecConfig {
  User?: string;
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
  Volumes?: Record<string, unknown> | null;
}

export interface ImageConfigInput {
  config?: ImageExecConfig | null;
}

function envKey(entry: string): string {
  const eq = entry.indexOf('=');
  return eq < 0 ? entry : entry.slice(0, eq);
}

/** Image env, then the user's by key (a key keeps its first position, as umoci and podman do). */
function buildEnv(
  image: string[],
  user: string[],
  hostEnv: Record<string, string | undefined>,
): Map<string, string> {
  const env = new Map<string, string>();
  for (const e of image) env.set(envKey(e), e);
  for (const e of user) {
    const key = envKey(e);
    if (key === '') throw new InvalidArgumentError(`--env "${e}": empty variable name`, { op: 'env' });
    if (e.includes('=')) env.set(key, e);
    else if (hostEnv[key] !== undefined) env.set(key, `${key}=${hostEnv[key]}`);
  }
  return env;
}

/** "TERM", "SIGTERM", "sigterm", "15", "SIGRTMIN+3" -> "SIGTERM", "15", "SIGRTMIN+3". */
export function normalizeSignal(signal: string): string {
  const s = signal.trim().toUpperCase();
  if (/^[0-9]+$/.test(s) && Number(s) >= 1 && Number(s) <= 64) return String(Number(s));
  const name = s.startsWith('SIG') ? s : `SIG${s}`;
  if (name in constants.signals || /^SIGRTM(IN|AX)([+-][0-9]+)?$/.test(name)) return name;
  throw new InvalidArgumentError(`stop signal "${signal}" is not a signal`, { op: 'config' });
}

/**
 * The image's stop signal, normalized: the config's StopSignal, else the same key as a label (some
 * builders write only the label). Both go through normalizeSignal, so a label cannot smuggle in
 * anything but a signal.
 */
function imageStopSignal(cfg: ImageExecConfig): string | undefined {
  const label = cfg.Labels?.[STOP_SIGNAL_ANNOTATION];
  const signal = cfg.StopSignal || label;
  return signal ? normalizeSignal(signal) : undefined;
}

function buildArgs(cfg: ImageExecConfig, opts: RunOptions): string[] {
  const entrypoint = opts.entrypoint ?? cfg.Entrypoint ?? [];
  // docker and podman: a new --entrypoint also drops the image's Cmd.
  const cmd = opts.command?.length ? opts.command : opts.entrypoint !== undefined ? [] : (cfg.Cmd ?? []);
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) {
    throw new InvalidArgumentError(
      'nothing to run: the image has no Entrypoint or Cmd and no command was given',
      {
        op: 'config',
      },
    );
  }
  if (args[0] === '')
    throw new InvalidArgumentError('nothing to run: the command is an empty string', { op: 'config' });
  return args;
}

function buildCwd(cfg: ImageExecConfig, opts: RunOptions): string {
  if (opts.workdir !== undefined) {
    if (!opts.workdir.startsWith('/'))
      throw new InvalidArgumentError(`--workdir "${opts.workdir}" must be an absolute path`, {
        op: 'config',
      });
    return posix.normalize(opts.workdir);
  }
  // Old docker images carry relative WorkingDirs; docker resolves them against "/".
  return cfg.WorkingDir ? posix.resolve('/', cfg.WorkingDir) : '/';
}

function buildHostname(opts: RunOptions): string {
  const name =
    opts.hostname ??
    (opts.network === 'host' ? hostHostname() : (opts.containerId?.slice(0, 12) ?? 'strata'));
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$/.test(name))
    throw new InvalidArgumentError(`hostname "${name}" is not a valid host name`, { op: 'config' });
  return name;
}

function toMount(m: MountOption): Mount {
  return { destination: m.destination, type: m.type, source: m.source, options: [...m.options] };
}

function buildMounts(cfg: ImageExecConfig, opts: RunOptions): Mount[] {
  const mounts = defaultMounts();
  const put = (m: Mount): void => {
    const at = mounts.findIndex((x) => x.destination === m.destination);
    if (at >= 0) mounts.splice(at, 1);
    mounts.push(m);
  };
  const scratch = ['rw', 'rprivate', 'nosuid', 'nodev'];
  if (opts.readOnly)
    for (const d of READ_ONLY_TMPFS)
      put({ destination: d, type: 'tmpfs', source: 'tmpfs', options: scratch });
  // Image volumes become anonymous tmpfs mounts: strata keeps no volumes, and they start empty.
  for (const v of Object.keys(cfg.Volumes ?? {}).sort()) {
    put({
      destination: containerPath(v, 'image volume'),
      type: 'tmpfs',
      source: 'tmpfs',
      options: [...scratch],
    });
  }
  const etc: [string, string | undefined][] = [
    ['/etc/hosts', opts.etcFiles?.hosts],
    ['/etc/hostname', opts.etcFiles?.hostname],
    ['/etc/resolv.conf', opts.etcFiles?.resolvConf],
  ];
  for (const [destination, source] of etc) {
    if (source === undefined) continue;
    if (!source.startsWith('/'))
      throw new InvalidArgumentError(`host file for ${destination} "${source}" must be an absolute path`, {
        op: 'config',
      });
    put({
      destination,
      type: 'bind',
      source,
      options: ['bind', 'rprivate', ...(opts.readOnly ? ['ro'] : [])],
    });
  }
  const seen = new Set<string>();
  for (const m of opts.mounts ?? []) {
    const destination = containerPath(m.destination, 'mount destination');
    if (seen.has(destination))
      throw new InvalidArgumentError(`two mounts have the destination ${destination}`, { op: 'mount' });
    seen.add(destination);
    put(toMount({ ...m, destination }));
  }
  return mounts;
}

/**
 * The config.json for a container of `image` run with `opts`. `lookup` reads a file of the image
 * by absolute path (symlinks resolved inside the image) or returns undefined; it is used for
 * /etc/passwd and /etc/group only. The result validates against schemas/runtime-config.
 */
export function buildRuntimeConfig(
  image: ImageConfigInput,
  opts: RunOptions,
  lookup: ImageFileLookup,
): RuntimeConfig {
  const cfg = image.config ?? {};
  const args = buildArgs(cfg, opts);
  const user = resolveUser(opts.user ?? cfg.User ?? '', lookup);
  const hostname = buildHostname(opts);

  const env = buildEnv(cfg.Env ?? [], opts.env ?? [], opts.hostEnv ?? process.env);
  const setDefault = (key: string, value: string | undefined): void => {
    if (value !== undefined && !env.has(key)) env.set(key, `${key}=${value}`);
  };
  setDefault('PATH', DEFAULT_PATH);
  if (opts.tty) setDefault('TERM', 'xterm');
  setDefault('container', CONTAINER_ENV_VALUE);
  setDefault('HOSTNAME', hostname);
  setDefault('HOME', user.home);

  // Nothing the image carries becomes an annotation: runtimes act on some (crun's run.oci.hooks.*
  // opens host files as root), hooks and strata on others. podman does not copy labels either.
  // Only the stop signal crosses, validated, and the user's own --annotation values.
  const annotations: Record<string, string> = {};
  const stopSignal = imageStopSignal(cfg);
  if (stopSignal !== undefined) annotations[STOP_SIGNAL_ANNOTATION] = stopSignal;
  if (opts.annotations?.[SECCOMP_BPF_ANNOTATION] !== undefined)
    throw new InvalidArgumentError(
      `--annotation ${SECCOMP_BPF_ANNOTATION}: strata sets it itself, from the seccomp profile; ` +
        'use --security-opt seccomp=FILE for another filter',
      { op: 'annotation' },
    );
  Object.assign(annotations, opts.annotations ?? {});

  const capabilities = buildCapabilities(opts.capAdd, opts.capDrop, user.uid);
  // podman's default profile, filtered by the capabilities the container holds (as podman does).
  const seccompProfile = opts.seccompProfile ?? DEFAULT_SECCOMP_PROFILE;
  const seccomp =
    seccompProfile === 'unconfined' ? undefined : seccompFor(seccompProfile, capabilities.bounding ?? []);
  const pids = pidsLimit(opts.pidsLimit, opts.runtime);

  const namespaces: Namespace[] = [{ type: 'pid' }];
  if (opts.network !== 'host') namespaces.push({ type: 'network' });
  namespaces.push({ type: 'ipc' }, { type: 'uts' }, { type: 'mount' });

  const config: RuntimeConfig = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: opts.tty ?? false,
      user: {
        uid: user.uid,
        gid: user.gid,
        umask: 0o022,
        ...(user.additionalGids.length ? { additionalGids: user.additionalGids } : {}),
      },
      args,
      env: [...env.values()],
      cwd: buildCwd(cfg, opts),
      capabilities,
      rlimits: hostRlimits(opts.procLimits),
      noNewPrivileges: opts.noNewPrivileges ?? false,
    },
    root: { path: 'rootfs', readonly: opts.readOnly ?? false },
    hostname,
    mounts: buildMounts(cfg, opts),
    ...(opts.hooks ? { hooks: opts.hooks } : {}),
    annotations,
    linux: {
      // No cgroup namespace (podman's default on this cgroup v1+v2 hybrid host) and of
      // linux.resources only pids: a devices rule makes crun load an eBPF filter, which needs
      // CAP_SYS_RESOURCE for RLIMIT_MEMLOCK and fails here (docs/architecture.md#host-facts).
      namespaces,
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
      ...(pids !== undefined ? { resources: { pids: { limit: pids } } } : {}),
      ...(seccomp ? { seccomp } : {}),
    },
  };
  return validate<RuntimeConfig>('runtime-config', config, 'runtime config');
}
