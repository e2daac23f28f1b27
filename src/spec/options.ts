// The user's run options, normalized once: what `strata run`, the podman wrapper and the shim
// hand to buildRuntimeConfig. -v and --mount strings are parsed here into one MountOption shape.
import { statSync } from 'node:fs';
import { posix } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import type { Hooks } from '../schema/generated/runtime-config.js';

export interface MountOption {
  type: 'bind' | 'tmpfs';
  /** Host path of a bind mount (checkBindSources checks that it exists); "tmpfs" for a tmpfs. */
  source: string;
  /** Absolute, normalized path inside the container. */
  destination: string;
  /** OCI mount options, e.g. ["rbind", "ro", "rprivate"]. */
  options: string[];
}

/** Host files bind-mounted over the container's /etc/hosts, /etc/hostname, /etc/resolv.conf. */
export interface EtcFiles {
  hosts?: string;
  hostname?: string;
  resolvConf?: string;
}

export interface RunOptions {
  /** Replaces the image's Cmd. */
  command?: string[];
  /** Replaces the image's Entrypoint; [] clears it. */
  entrypoint?: string[];
  /** "K=V", or "K" to take K from hostEnv (dropped when the host has no K, as docker does). */
  env?: string[];
  workdir?: string;
  /** Replaces the image's User: USER, UID, USER:GROUP or UID:GID. */
  user?: string;
  /** Default: the host's hostname with network "host", otherwise containerId's first 12 characters or "strata". */
  hostname?: string;
  containerId?: string;
  readOnly?: boolean;
  mounts?: MountOption[];
  capAdd?: string[];
  capDrop?: string[];
  /** Default "none": a private network namespace with only loopback. */
  network?: 'none' | 'host';
  tty?: boolean;
  annotations?: Record<string, string>;
  hooks?: Hooks;
  etcFiles?: EtcFiles;
  /** Where "K" env entries come from; default process.env. */
  hostEnv?: Record<string, string | undefined>;
  /** Contents of /proc/self/limits to derive rlimits from; default: read it. */
  procLimits?: string;
  /** --security-opt seccomp=: "unconfined", or an absolute profile path; default: podman's profile file. */
  seccompProfile?: string;
  /** --security-opt no-new-privileges (podman's default is off). */
  noNewPrivileges?: boolean;
  /** --pids-limit: above 0 a limit, 0 or -1 none; default: podman's 2048 where the cgroups honour it. */
  pidsLimit?: number;
  /** The runtime the config is for, when known: defaults that depend on what it can do. */
  runtime?: 'crun' | 'runc';
}

export interface SecurityOptions {
  seccompProfile?: string;
  noNewPrivileges?: boolean;
}

/** podman's --security-opt values that strata implements; anything else is refused by name. */
export function parseSecurityOpts(values: readonly string[]): SecurityOptions {
  const out: SecurityOptions = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    const key = eq < 0 ? v : v.slice(0, eq);
    const value = eq < 0 ? undefined : v.slice(eq + 1);
    if (key === 'seccomp' && value !== undefined && value !== '') {
      if (value !== 'unconfined' && !value.startsWith('/'))
        throw new InvalidArgumentError(
          `--security-opt ${v}: the profile must be an absolute path (or "unconfined")`,
          { op: 'security-opt' },
        );
      out.seccompProfile = value === 'unconfined' ? value : posix.normalize(value);
    } else if (
      key === 'no-new-privileges' &&
      (value === undefined || value === 'true' || value === 'false')
    ) {
      out.noNewPrivileges = value !== 'false';
    } else {
      throw new InvalidArgumentError(
        `--security-opt ${v}: not supported (strata takes seccomp=unconfined, seccomp=FILE and no-new-privileges)`,
        { op: 'security-opt' },
      );
    }
  }
  return out;
}

/** --annotation K=V (V may be empty, K may not). */
export function parseAnnotation(value: string): [string, string] {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`--annotation ${value}: use KEY=VALUE`, { op: 'annotation' });
  return [value.slice(0, eq), value.slice(eq + 1)];
}

/** --pids-limit N: an integer; 0 and -1 mean no limit, as in podman. */
export function parsePidsLimit(value: string): number {
  if (!/^-?[0-9]+$/.test(value.trim()) || Number(value) < -1 || !Number.isSafeInteger(Number(value)))
    throw new InvalidArgumentError(`--pids-limit ${value}: use a number of tasks, or -1 for no limit`, {
      op: 'pids-limit',
    });
  return Number(value);
}

const PROPAGATION = ['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'];

/** An absolute container path, normalized; "/" itself and relative paths are refused. */
export function containerPath(path: string, what: string): string {
  if (!path.startsWith('/'))
    throw new InvalidArgumentError(`${what} "${path}" must be an absolute path`, { op: 'mount' });
  const norm = posix.normalize(path).replace(/\/+$/, '');
  if (norm === '')
    throw new InvalidArgumentError(`${what} "${path}" cannot be the root directory`, { op: 'mount' });
  return norm;
}

function bind(source: string, destination: string, flags: string[], spec: string): MountOption {
  if (!source.startsWith('/')) {
    throw new InvalidArgumentError(
      `mount "${spec}": source "${source}" must be an absolute host path (strata has no named volumes)`,
      { op: 'mount' },
    );
  }
  let ro = false;
  let propagation = 'rprivate';
  let recursive = true;
  const extra: string[] = [];
  for (const f of flags) {
    if (f === 'ro' || f === 'rw') ro = f === 'ro';
    else if (PROPAGATION.includes(f)) propagation = f;
    else if (f === 'bind' || f === 'rbind') recursive = f === 'rbind';
    else if (f === 'nosuid' || f === 'nodev' || f === 'noexec' || f === 'suid' || f === 'dev' || f === 'exec')
      extra.push(f);
    else if (f === 'z' || f === 'Z')
      continue; // SELinux relabel: no SELinux on strata's hosts
    else throw new InvalidArgumentError(`mount "${spec}": unknown option "${f}"`, { op: 'mount' });
  }
  return {
    type: 'bind',
    source: posix.normalize(source),
    destination: containerPath(destination, `mount "${spec}": destination`),
    options: [ro ? 'ro' : 'rw', propagation, recursive ? 'rbind' : 'bind', ...extra],
  };
}

function tmpfs(destination: string, extra: string[], spec: string): MountOption {
  return {
    type: 'tmpfs',
    source: 'tmpfs',
    destination: containerPath(destination, `mount "${spec}": destination`),
    options: ['rw', 'rprivate', 'nosuid', 'nodev', ...extra],
  };
}

/** `-v SRC:DST[:OPT,...]`, or `-v DST` for an anonymous volume (a tmpfs: strata keeps no volumes). */
export function parseVolume(spec: string): MountOption {
  const parts = spec.split(':');
  if (parts.length === 1 && parts[0] !== '') return tmpfs(parts[0], [], spec);
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) {
    throw new InvalidArgumentError(`volume "${spec}" is not SRC:DST[:OPTIONS]`, { op: 'mount' });
  }
  return bind(parts[0], parts[1], parts[2] === undefined ? [] : parts[2].split(','), spec);
}

/** `--mount type=bind,src=/a,dst=/b[,ro][,bind-propagation=P]` or `type=tmpfs,dst=/b[,tmpfs-size=N][,tmpfs-mode=M]`. */
export function parseMount(spec: string): MountOption {
  const kv = new Map<string, string | undefined>();
  for (const field of spec.split(',')) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).trim();
    if (key === '') throw new InvalidArgumentError(`mount "${spec}": empty field`, { op: 'mount' });
    kv.set(key, eq < 0 ? undefined : field.slice(eq + 1));
  }
  const type = kv.get('type') ?? 'bind';
  const dst = kv.get('dst') ?? kv.get('destination') ?? kv.get('target');
  if (!dst) throw new InvalidArgumentError(`mount "${spec}": no destination (dst=)`, { op: 'mount' });
  const readonlyValue = kv.has('ro') ? kv.get('ro') : kv.get('readonly');
  const readOnly = (kv.has('ro') || kv.has('readonly')) && readonlyValue !== 'false' && readonlyValue !== '0';
  const known = ['type', 'src', 'source', 'dst', 'destination', 'target', 'ro', 'readonly'];
  if (type === 'bind') {
    const src = kv.get('src') ?? kv.get('source');
    if (!src) throw new InvalidArgumentError(`mount "${spec}": a bind mount needs src=`, { op: 'mount' });
    const flags = [readOnly ? 'ro' : 'rw'];
    for (const [k, v] of kv) {
      if (known.includes(k)) continue;
      if (k === 'bind-propagation' && v) flags.push(v);
      else if (k === 'bind-nonrecursive') flags.push('bind');
      else throw new InvalidArgumentError(`mount "${spec}": unknown field "${k}"`, { op: 'mount' });
    }
    return bind(src, dst, flags, spec);
  }
  if (type === 'tmpfs') {
    const extra: string[] = [];
    for (const [k, v] of kv) {
      if (known.includes(k)) continue;
      if (k === 'tmpfs-size' && v && /^[0-9]+[kmg]?$/i.test(v)) extra.push(`size=${v}`);
      else if (k === 'tmpfs-mode' && v && /^[0-7]{3,4}$/.test(v)) extra.push(`mode=${v}`);
      else
        throw new InvalidArgumentError(`mount "${spec}": bad field "${k}${v === undefined ? '' : '=' + v}"`, {
          op: 'mount',
        });
    }
    const m = tmpfs(dst, extra, spec);
    if (readOnly) m.options[0] = 'ro';
    return m;
  }
  throw new InvalidArgumentError(`mount "${spec}": type "${type}" is not bind or tmpfs`, { op: 'mount' });
}

/**
 * Every bind source must exist on the host. Checked before the container is made: otherwise the
 * runtime fails in the middle of creating it, with a message about mounts rather than the option.
 */
export function checkBindSources(mounts: MountOption[]): MountOption[] {
  for (const m of mounts) {
    if (m.type !== 'bind') continue;
    try {
      statSync(m.source);
    } catch (err) {
      const why =
        (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : (err as Error).message;
      throw new InvalidArgumentError(`bind mount source ${m.source} (for ${m.destination}) ${why}`, {
        op: 'mount',
        path: m.source,
      });
    }
  }
  return mounts;
}
