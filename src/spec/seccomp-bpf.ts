// A container's seccomp filter compiled once, ahead of crun, and handed to it in the
// `run.oci.seccomp_bpf_data` annotation (crun(1): "crun ignores the seccomp section in the OCI
// configuration file and use the specified data as the raw data to the
// seccomp(SECCOMP_SET_MODE_FILTER) syscall. The data must be encoded in base64"). crun 1.8.1 as
// Debian builds it has no compiled-filter cache, so without this it compiles podman's profile with
// libseccomp at every start (~10-15 ms of CPU on the start path; docs/architecture.md#start-path).
//
// The filter must be the one crun would build: precompileSeccomp makes the same libseccomp calls
// in the same order as crun 1.8.1's libcrun_generate_seccomp (src/libcrun/seccomp.c), through the
// same libseccomp.so.2 crun links (the addon dlopens it):
// - seccomp_init(defaultAction), defaultAction's errno defaulting to EPERM;
// - seccomp_arch_add(seccomp_arch_resolve_name(lowercase(arch without "SCMP_ARCH_"))), EEXIST ignored;
// - per syscall entry, in order: its action (errnoRet defaulting to EPERM for ERRNO and TRACE);
//   entries whose action equals the default are skipped; per name, one rule with all comparisons,
//   or, when one argument index appears twice, one rule per comparison; unknown names skipped.
// test/spec/seccomp-bpf.test.ts compares the result with the seccomp.bpf crun itself writes.
//
// Only strata sets the annotation: it is derived from linux.seccomp here, never taken from an
// image, and a user's --annotation of it is refused (runtime-config.ts). runc ignores it and
// keeps applying linux.seccomp, which stays in the config for it (and for crun's seccomp flags).
// Compiled filters are kept per daemon in memory and on disk under the store's cache/seccomp/,
// named by a digest of everything that decides the bytes (see cacheKey).
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { arch, release, version } from 'node:os';
import { dirname } from 'node:path';

import { isErrno } from '../errors.js';
import { native, nativeBuilt } from '../native-addon.js';
import { writeFileAtomicSync } from '../store/atomic.js';
import { seccompCachePath } from '../store/layout.js';
import type { LinuxSeccomp } from './seccomp.js';

// seccomp.h (libseccomp 2.5): the action and comparison values crun's get_seccomp_action and
// get_seccomp_operator return.
const EPERM = 1;
const ACT_ERRNO = 0x00050000;
const ACT_TRACE = 0x7ff00000;
const ACTIONS: Record<string, number | ((errno: number) => number)> = {
  SCMP_ACT_ALLOW: 0x7fff0000,
  SCMP_ACT_ERRNO: (e) => (ACT_ERRNO | (e & 0xffff)) >>> 0,
  SCMP_ACT_KILL: 0x00000000,
  SCMP_ACT_LOG: 0x7ffc0000,
  SCMP_ACT_TRAP: 0x00030000,
  SCMP_ACT_TRACE: (e) => (ACT_TRACE | (e & 0xffff)) >>> 0,
  SCMP_ACT_KILL_PROCESS: 0x80000000,
  SCMP_ACT_KILL_THREAD: 0x00000000,
  SCMP_ACT_NOTIFY: 0x7fc00000,
};
const OPERATORS: Record<string, number> = {
  SCMP_CMP_NE: 1,
  SCMP_CMP_LT: 2,
  SCMP_CMP_LE: 3,
  SCMP_CMP_EQ: 4,
  SCMP_CMP_GE: 5,
  SCMP_CMP_GT: 6,
  SCMP_CMP_MASKED_EQ: 7,
};

/** crun's seccomp_action_supports_errno. */
function supportsErrno(action: string): boolean {
  return action === 'SCMP_ACT_ERRNO' || action === 'SCMP_ACT_TRACE';
}

/** Why crun's own generation is left to crun: it would fail, and must say so itself. */
class NotPrecompiled extends Error {}

function action(name: string, errnoRet: number | undefined): number {
  const a = ACTIONS[name];
  if (a === undefined) throw new NotPrecompiled(`seccomp action ${name}`);
  if (errnoRet !== undefined && !supportsErrno(name))
    throw new NotPrecompiled(`errno value for action ${name}`);
  return typeof a === 'function' ? a(errnoRet ?? EPERM) : a;
}

export interface SeccompRuleCall {
  action: number;
  syscall: string;
  /** [arg, op, datumA, datumB] per comparison, flat. */
  args: number[];
}

/** The libseccomp calls crun 1.8.1 makes for `seccomp`, as data (throws NotPrecompiled where crun fails). */
export function seccompCalls(seccomp: LinuxSeccomp): {
  defaultAction: number;
  arches: string[];
  rules: SeccompRuleCall[];
} {
  const defaultAction = action(seccomp.defaultAction, seccomp.defaultErrnoRet);
  const arches = (seccomp.architectures ?? []).map((a) =>
    (a.startsWith('SCMP_ARCH_') ? a.slice(10) : a).slice(0, 31).toLowerCase(),
  );
  const rules: SeccompRuleCall[] = [];
  for (const call of seccomp.syscalls ?? []) {
    const act = action(call.action, call.errnoRet);
    if (act === defaultAction) continue;
    const args = (call.args ?? []).slice(0, 6);
    for (const a of args) {
      if (a.index >= 6) throw new NotPrecompiled(`seccomp argument index ${a.index}`);
      if (OPERATORS[a.op] === undefined) throw new NotPrecompiled(`seccomp operator ${a.op}`);
    }
    const cmp = args.map((a) => [a.index, OPERATORS[a.op], a.value, a.valueTwo ?? 0]);
    const multiple = new Set(args.map((a) => a.index)).size !== args.length;
    for (const syscall of call.names) {
      if (!multiple) rules.push({ action: act, syscall, args: cmp.flat() });
      else for (const c of cmp) rules.push({ action: act, syscall, args: c });
    }
  }
  return { defaultAction, arches, rules };
}

let libVersion: string | null | undefined;

/** libseccomp's version, or null where it (or the addon) is missing: then nothing is precompiled. */
function seccompLibVersion(): string | null {
  if (libVersion === undefined) libVersion = nativeBuilt ? native.seccompVersion() : null;
  return libVersion;
}

/**
 * What decides the bytes: our rules' and the cache file's format version (bump it with either,
 * so that an older strata sharing the store never reads a newer file), libseccomp, the kernel
 * (libseccomp probes it), the filter.
 */
function cacheKey(seccomp: LinuxSeccomp, lib: string): string {
  return createHash('sha256')
    .update(`strata-seccomp-bpf 2\0${lib}\0${release()}\0${version()}\0${arch()}\0`)
    .update(JSON.stringify(seccomp))
    .digest('hex');
}

interface Compiled {
  /** base64 BPF; null: not precompiled (crun compiles and reports). */
  b64: string | null;
  key?: string;
}

const memory = new WeakMap<LinuxSeccomp, Compiled>();
/** Cache files this process has read or written. */
const onDisk = new Set<string>();

function compile(seccomp: LinuxSeccomp, lib: string): Compiled {
  const key = cacheKey(seccomp, lib);
  let calls;
  try {
    calls = seccompCalls(seccomp);
  } catch (err) {
    if (!(err instanceof NotPrecompiled)) throw err;
    return { b64: null };
  }
  try {
    return {
      b64: native.seccompCompile(calls.defaultAction, calls.arches, calls.rules).toString('base64'),
      key,
    };
  } catch (err) {
    // crun would refuse the same filter (an unknown arch, a refused rule): let it say so.
    if ((err as { code?: string }).code !== 'ESECCOMP') throw err;
    return { b64: null };
  }
}

/**
 * A cache file is the filter's sha256 (32 bytes) and then the filter: what goes to crun as the
 * container's seccomp filter is never bytes that a damaged file happens to hold.
 */
function encodeCached(bpf: Buffer): Buffer {
  return Buffer.concat([createHash('sha256').update(bpf).digest(), bpf]);
}

/** The cached filter at `path`, or undefined (absent, damaged, or not whole instructions). */
function readCached(path: string): Buffer | undefined {
  let file: Buffer;
  try {
    file = readFileSync(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  const bpf = file.subarray(32);
  if (bpf.length === 0 || bpf.length % 8 !== 0) return undefined;
  return createHash('sha256').update(bpf).digest().equals(file.subarray(0, 32)) ? bpf : undefined;
}

/**
 * The base64 BPF crun would build for `seccomp`, or undefined when it cannot be precompiled here
 * (no libseccomp, or a filter crun itself would refuse: crun then compiles it and reports the
 * error). Kept per LinuxSeccomp object (seccompFor keeps one per profile and capability set) and,
 * when storeRoot is given, in `<storeRoot>/cache/seccomp/<key>.bpf` for the next process.
 */
export function precompileSeccomp(seccomp: LinuxSeccomp, storeRoot?: string): string | undefined {
  const lib = seccompLibVersion();
  if (lib === null) return undefined;
  let known = memory.get(seccomp);
  const key = known?.key ?? cacheKey(seccomp, lib);
  const path = storeRoot === undefined ? undefined : seccompCachePath(storeRoot, key);
  if (!known && path) {
    const bpf = readCached(path);
    if (bpf) {
      known = { b64: bpf.toString('base64'), key };
      onDisk.add(path);
    } else onDisk.delete(path); // absent or damaged: written again below
  }
  known ??= compile(seccomp, lib);
  memory.set(seccomp, known);
  if (known.b64 !== null && path && !onDisk.has(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileAtomicSync(path, encodeCached(Buffer.from(known.b64, 'base64')), { mode: 0o600 });
    onDisk.add(path);
  }
  return known.b64 ?? undefined;
}
