// The seccomp filter of a container: podman's default profile, read at run time from the file
// Debian's containers-common installs (/usr/share/containers/seccomp.json, the one podman on the
// same host applies; distro updates reach strata too), or the user's --security-opt
// seccomp=FILE, converted to the OCI linux.seccomp form the way containers/common pkg/seccomp
// (setupSeccomp, v0.50) does:
// - archMap: the entry of the native architecture gives `architectures` (it and its
//   subarchitectures); a plain `architectures` list passes as is; both at once is an error;
// - a syscall block is dropped when excludes.arches names the native arch or excludes.caps names
//   a capability in the bounding set, or when includes.arches does not name the native arch or
//   includes.caps names one not in the bounding set; includes/excludes.minKernel compare with the
//   running kernel (later containers/common);
// - name and names at once is an error; args and errnoRet pass through; errno names do not.
// A file is parsed and validated once per (path, mtime, size, inode): the daemon writes many
// bundles, and a profile only changes when its file does.
import { readFileSync, statSync } from 'node:fs';
import { release } from 'node:os';

import { InvalidArgumentError, NotFoundError, isErrno } from '../errors.js';
import type { SeccompProfile, Syscall } from '../schema/generated/seccomp-profile.js';
import { parseAndValidate } from '../schema/validate.js';

export const DEFAULT_SECCOMP_PROFILE = '/usr/share/containers/seccomp.json';

/** runtime-spec linux.seccomp (the schema keeps it an open object, so the type lives here). */
export interface LinuxSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  syscalls?: LinuxSyscall[];
}

export interface LinuxSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: { index: number; value: number; valueTwo?: number; op: string }[];
}

/** Node's process.arch -> libseccomp's native arch name (the names profiles' arches use). */
const NODE_TO_SECCOMP_NATIVE: Record<string, string> = {
  x64: 'amd64',
  ia32: 'x86',
  arm64: 'arm64',
  arm: 'arm',
  s390x: 's390x',
  ppc64: 'ppc64le',
  mips64el: 'mipsel64',
  riscv64: 'riscv64',
};

/** containers/common's nativeToSeccomp: which archMap entry belongs to the native arch. */
const NATIVE_TO_ARCH_MAP: Record<string, string> = {
  amd64: 'SCMP_ARCH_X86_64',
  arm64: 'SCMP_ARCH_AARCH64',
  mips64: 'SCMP_ARCH_MIPS64',
  mips64n32: 'SCMP_ARCH_MIPS64N32',
  mipsel64: 'SCMP_ARCH_MIPSEL64',
  mipsel64n32: 'SCMP_ARCH_MIPSEL64N32',
  s390x: 'SCMP_ARCH_S390X',
};

export interface ConvertContext {
  /** The container's bounding capabilities. */
  bounding: readonly string[];
  /** libseccomp's native arch name; default: this machine's. */
  arch?: string;
  /** Kernel release ("6.18.0-..."); default: the running kernel's. */
  kernel?: string;
}

/** "6.18.0-foo" >= "5.8"? (major.minor, as containers/common compares minKernel) */
function kernelAtLeast(kernel: string, min: string): boolean {
  const [maj, minr] = kernel.split(/[.-]/).map(Number);
  const [wantMaj, wantMin = 0] = min.split('.').map(Number);
  return maj > wantMaj || (maj === wantMaj && minr >= wantMin);
}

function applies(call: Syscall, arch: string, bounding: ReadonlySet<string>, kernel: string): boolean {
  const ex = call.excludes ?? {};
  const inc = call.includes ?? {};
  if (ex.arches?.includes(arch)) return false;
  if (ex.caps?.some((c) => bounding.has(c))) return false;
  if (ex.minKernel !== undefined && kernelAtLeast(kernel, ex.minKernel)) return false;
  if (inc.arches?.length && !inc.arches.includes(arch)) return false;
  if (inc.caps?.some((c) => !bounding.has(c))) return false;
  if (inc.minKernel !== undefined && !kernelAtLeast(kernel, inc.minKernel)) return false;
  return true;
}

function toSpecSyscall(names: string[], call: Syscall): LinuxSyscall {
  return {
    names,
    action: call.action,
    ...(call.errnoRet !== undefined ? { errnoRet: call.errnoRet } : {}),
    ...(call.args?.length
      ? {
          args: call.args.map((a) => ({
            index: a.index,
            value: a.value,
            // podman's Go struct drops a zero valueTwo (omitempty); so does strata.
            ...(a.valueTwo ? { valueTwo: a.valueTwo } : {}),
            op: a.op,
          })),
        }
      : {}),
  };
}

/** The OCI linux.seccomp for `profile` and a container with `ctx.bounding` capabilities. */
export function convertSeccompProfile(
  profile: SeccompProfile,
  ctx: ConvertContext,
  what = 'seccomp profile',
): LinuxSeccomp {
  const arch = ctx.arch ?? NODE_TO_SECCOMP_NATIVE[process.arch] ?? process.arch;
  const kernel = ctx.kernel ?? release();
  const bounding = new Set(ctx.bounding);
  const bad = (msg: string): never => {
    throw new InvalidArgumentError(`${what}: ${msg}`, { op: 'seccomp' });
  };
  if (profile.architectures?.length && profile.archMap?.length)
    bad("'architectures' and 'archMap' were both given; use one");
  const out: LinuxSeccomp = { defaultAction: profile.defaultAction };
  if (profile.defaultErrnoRet !== undefined) out.defaultErrnoRet = profile.defaultErrnoRet;
  let architectures = profile.architectures?.length ? [...profile.architectures] : [];
  const native = NATIVE_TO_ARCH_MAP[arch];
  const entry = native === undefined ? undefined : profile.archMap?.find((a) => a.architecture === native);
  if (entry) architectures = [entry.architecture, ...(entry.subArchitectures ?? [])];
  if (architectures.length) out.architectures = architectures;
  const syscalls: LinuxSyscall[] = [];
  for (const call of profile.syscalls ?? []) {
    if (!applies(call, arch, bounding, kernel)) continue;
    if (call.name !== undefined && call.names?.length)
      bad(`a syscall entry has both 'name' (${call.name}) and 'names'; use one`);
    if (call.name !== undefined) syscalls.push(toSpecSyscall([call.name], call));
    if (call.names?.length) syscalls.push(toSpecSyscall([...call.names], call));
  }
  out.syscalls = syscalls;
  return out;
}

interface CacheEntry {
  key: string;
  profile: SeccompProfile;
  converted: Map<string, LinuxSeccomp>;
}

const cache = new Map<string, CacheEntry>();

/** The parsed profile at `path` (re-read only when the file changed). */
function loadProfile(path: string): CacheEntry {
  let key: string;
  try {
    const st = statSync(path);
    key = `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) {
      const hint =
        path === DEFAULT_SECCOMP_PROFILE
          ? ` (Debian's golang-github-containers-common installs it; or run with --security-opt seccomp=unconfined)`
          : '';
      throw new NotFoundError(`seccomp profile ${path} does not exist${hint}`, { op: 'seccomp', path });
    }
    throw err;
  }
  const hit = cache.get(path);
  if (hit?.key === key) return hit;
  const profile = parseAndValidate<SeccompProfile>(
    'seccomp-profile',
    readFileSync(path),
    `seccomp profile ${path}`,
  );
  const entry: CacheEntry = { key, profile, converted: new Map() };
  cache.set(path, entry);
  return entry;
}

/**
 * linux.seccomp for the profile file at `path` and a container with the `bounding` capabilities;
 * conversions are kept per capability set, so a warm daemon pays one stat per container.
 */
export function seccompFor(path: string, bounding: readonly string[]): LinuxSeccomp {
  const entry = loadProfile(path);
  const capsKey = [...bounding].sort().join(',');
  let converted = entry.converted.get(capsKey);
  if (!converted) {
    converted = convertSeccompProfile(entry.profile, { bounding }, `seccomp profile ${path}`);
    entry.converted.set(capsKey, converted);
  }
  return converted;
}
