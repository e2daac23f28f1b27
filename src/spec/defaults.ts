// What a container gets when the user asks for nothing: podman 4.3.1's defaults, as captured
// from the config.json that `podman run` hands to its runtime on this machine (Debian 12), minus
// what breaks crun here or belongs to podman alone. See docs/architecture.md#host-facts.
import { existsSync, readFileSync } from 'node:fs';
import { FailedPreconditionError } from '../errors.js';
import type { Mount, Rlimit } from '../schema/generated/runtime-config.js';

/** The runtime-spec version strata writes (Debian's specs-go, which podman 4.3 also writes). */
export const OCI_VERSION = '1.0.2-dev';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** `container=strata` in every container's environment, as podman sets container=podman (systemd reads it). */
export const CONTAINER_ENV_VALUE = 'strata';

/** Annotation carrying the image's StopSignal to the runner (the key podman uses). */
export const STOP_SIGNAL_ANNOTATION = 'org.opencontainers.image.stopSignal';

/** podman's default_capabilities from /usr/share/containers/containers.conf. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_NET_BIND_SERVICE',
  'CAP_SETFCAP',
  'CAP_SETGID',
  'CAP_SETPCAP',
  'CAP_SETUID',
  'CAP_SYS_CHROOT',
];

/** Every capability of include/uapi/linux/capability.h (0 … CAP_LAST_CAP = 40), in number order. */
export const ALL_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

export const MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/fs/selinux',
  '/sys/dev/block',
];

export const READONLY_PATHS: readonly string[] = [
  '/proc/asound',
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sys',
  '/proc/sysrq-trigger',
];

/**
 * The kernel filesystems every container gets. Deliberately absent, unlike podman:
 * - a `cgroup` mount at /sys/fs/cgroup: crun 1.8.1 fails on this host's v1+v2 hybrid layout;
 * - /run/.containerenv: podman's own marker file.
 * /dev/shm is a tmpfs of its own instead of podman's bind of a per-container host directory, so
 * nothing outlives the container's mount namespace.
 */
export function defaultMounts(): Mount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'noexec', 'strictatime', 'mode=755', 'size=65536k'],
    },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    {
      destination: '/dev/mqueue',
      type: 'mqueue',
      source: 'mqueue',
      options: ['nosuid', 'noexec', 'nodev'],
    },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
    },
  ];
}

/** podman's --read-only-tmpfs (on by default): writable scratch space on a read-only root. */
export const READ_ONLY_TMPFS: readonly string[] = ['/tmp', '/run', '/var/tmp'];

export interface HostLimit {
  soft: number;
  hard: number;
}

/**
 * Parse /proc/<pid>/limits ("Max open files  1024  4096  files") into RLIMIT_* -> limit.
 * An "unlimited" limit is left out: RLIM_INFINITY (2^64-1) has no exact JSON number in JS, and
 * leaving the rlimit out of config.json keeps the inherited (unlimited) value anyway.
 */
export function parseProcLimits(text: string): Map<string, HostLimit> {
  const names: Record<string, string> = {
    'Max open files': 'RLIMIT_NOFILE',
    'Max processes': 'RLIMIT_NPROC',
  };
  const out = new Map<string, HostLimit>();
  const value = (s: string): number => (s === 'unlimited' ? NaN : Number(s));
  for (const line of text.split('\n')) {
    const m = /^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)/.exec(line);
    const type = m && names[m[1]];
    if (!m || !type) continue;
    const soft = value(m[2]);
    const hard = value(m[3]);
    if (Number.isSafeInteger(soft) && Number.isSafeInteger(hard)) out.set(type, { soft, hard });
  }
  return out;
}

/**
 * podman raises NOFILE and NPROC to 1048576/4194304; without CAP_SYS_RESOURCE (this host) raising
 * a hard limit fails at container start, so strata asks for the current hard limit as both soft
 * and hard — raising a soft limit up to the hard one needs no privilege.
 */
export function hostRlimits(limitsText?: string): Rlimit[] {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return []; // no procfs: let the runtime keep what it inherits
    }
  }
  const limits = parseProcLimits(text);
  const out: Rlimit[] = [];
  for (const type of ['RLIMIT_NOFILE', 'RLIMIT_NPROC']) {
    const l = limits.get(type);
    if (l) out.push({ type, soft: l.hard, hard: l.hard });
  }
  return out;
}

/** podman's pids_limit (containers.conf): at most this many tasks in a container. */
export const DEFAULT_PIDS_LIMIT = 2048;

function cgroup2Controllers(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').trim().split(/\s+/);
  } catch {
    return [];
  }
}

const pidsAvailable = new Map<string, boolean>();

/**
 * Whether `runtime`'s containers get a pids controller on this host, so that a pids limit is
 * honoured rather than failing the start. runc on a v1 or hybrid host uses the v1 pids
 * hierarchy; crun here runs in a namespace with only the cgroup2 hierarchy mounted (hybrid
 * hosts: see run/cgroup-ns.ts), where the pids controller exists only if v1 does not hold it —
 * on this host crun fails with "the requested cgroup controller `pids` is not available". An
 * unknown runtime (`strata bundle`) needs both.
 */
export function pidsControllerAvailable(runtime?: 'crun' | 'runc', cgroupRoot = '/sys/fs/cgroup'): boolean {
  const key = `${runtime ?? 'any'}:${cgroupRoot}`;
  const known = pidsAvailable.get(key);
  if (known !== undefined) return known;
  const pureV2 = existsSync(`${cgroupRoot}/cgroup.controllers`);
  const v2Pids = cgroup2Controllers(`${cgroupRoot}/${pureV2 ? '' : 'unified/'}cgroup.controllers`).includes(
    'pids',
  );
  const v1Pids = !pureV2 && existsSync(`${cgroupRoot}/pids/tasks`);
  const runc = pureV2 ? v2Pids : v1Pids;
  const available = runtime === 'runc' ? runc : runtime === 'crun' ? v2Pids : runc && v2Pids;
  pidsAvailable.set(key, available);
  return available;
}

/**
 * The pids limit a container gets: the user's (0 or less: none), else podman's where honoured.
 * A limit asked for explicitly that the known runtime cannot enforce here is an error now, not a
 * runtime failure at start.
 */
export function pidsLimit(requested: number | undefined, runtime?: 'crun' | 'runc'): number | undefined {
  if (requested === undefined) return pidsControllerAvailable(runtime) ? DEFAULT_PIDS_LIMIT : undefined;
  if (requested <= 0) return undefined;
  if (runtime !== undefined && !pidsControllerAvailable(runtime)) {
    throw new FailedPreconditionError(
      `--pids-limit ${requested}: ${runtime} cannot enforce a pids limit on this host (its cgroup hierarchy has no pids controller)${runtime === 'crun' ? '; runc can (--runtime runc)' : ''}`,
      { op: 'pids-limit' },
    );
  }
  return requested;
}
