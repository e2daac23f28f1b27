// Converting a containers/common seccomp profile to linux.seccomp as podman does, against Debian's
// real default profile and small hostile or edge-case profiles built here; the per-file cache;
// --security-opt, --pids-limit and the pids-controller check.
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { DEFAULT_CAPABILITIES, pidsControllerAvailable, pidsLimit } from '../../src/spec/defaults.js';
import type { SeccompProfile } from '../../src/schema/generated/seccomp-profile.js';
import { parseAnnotation, parsePidsLimit, parseSecurityOpts } from '../../src/spec/options.js';
import { convertSeccompProfile, DEFAULT_SECCOMP_PROFILE, seccompFor } from '../../src/spec/seccomp.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-seccomp-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const names = (s: { syscalls?: { names: string[] }[] }) => s.syscalls?.flatMap((c) => c.names) ?? [];

test("Debian's default profile: x86_64 arches, EPERM blocks for capabilities the container lacks", () => {
  const s = seccompFor(DEFAULT_SECCOMP_PROFILE, DEFAULT_CAPABILITIES);
  assert.is(s.defaultAction, 'SCMP_ACT_ERRNO');
  assert.is(s.defaultErrnoRet, 38);
  assert.equal(s.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  const eperm = s.syscalls?.find((c) => c.names.includes('bpf'));
  assert.equal(eperm?.action, 'SCMP_ACT_ERRNO');
  assert.is(eperm?.errnoRet, 1);
  assert.ok(names(s).includes('arch_prctl'), 'the amd64-only block is in');
  assert.not.ok(names(s).includes('s390_pci_mmio_read'), 'the s390-only block is out');
  // personality: the args pass through.
  assert.equal(s.syscalls?.find((c) => c.names[0] === 'personality')?.args, [
    { index: 0, value: 0, op: 'SCMP_CMP_EQ' },
  ]);
});

test('a capability in the bounding set swaps its EPERM block for its allow block', () => {
  const withAdmin = seccompFor(DEFAULT_SECCOMP_PROFILE, [...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN']);
  const plain = seccompFor(DEFAULT_SECCOMP_PROFILE, DEFAULT_CAPABILITIES);
  const blocked = (s: typeof plain, name: string) =>
    s.syscalls?.some((c) => c.action === 'SCMP_ACT_ERRNO' && c.names.includes(name));
  const allowed = (s: typeof plain, name: string) =>
    s.syscalls?.some((c) => c.action === 'SCMP_ACT_ALLOW' && c.names.includes(name));
  assert.ok(blocked(plain, 'setns'));
  assert.not.ok(blocked(withAdmin, 'setns'));
  assert.ok(allowed(withAdmin, 'setns'));
  assert.not.ok(allowed(plain, 'bpf'));
});

test('arch, caps and minKernel filters; archMap for another arch; name vs names', () => {
  const profile: SeccompProfile = {
    defaultAction: 'SCMP_ACT_ERRNO',
    archMap: [
      { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86'] },
      { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
    ],
    syscalls: [
      { name: 'read', action: 'SCMP_ACT_ALLOW' },
      { names: ['arm_only'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['arm64'] } },
      { names: ['not_arm'], action: 'SCMP_ACT_ALLOW', excludes: { arches: ['arm64'] } },
      { names: ['both_caps'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_A', 'CAP_B'] } },
      { names: ['new_kernel'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '6.3' } },
      { names: ['old_kernel'], action: 'SCMP_ACT_ALLOW', excludes: { minKernel: '6.3' } },
    ],
  };
  const arm = convertSeccompProfile(profile, { bounding: ['CAP_A'], arch: 'arm64', kernel: '6.18.0-1' });
  assert.equal(arm.architectures, ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
  assert.equal(names(arm), ['read', 'arm_only', 'new_kernel']);
  const x86 = convertSeccompProfile(profile, {
    bounding: ['CAP_A', 'CAP_B'],
    arch: 'amd64',
    kernel: '5.10.0',
  });
  assert.equal(x86.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86']);
  assert.equal(names(x86), ['read', 'not_arm', 'both_caps', 'old_kernel']);
  assert.throws(
    () =>
      convertSeccompProfile(
        {
          defaultAction: 'SCMP_ACT_ALLOW',
          syscalls: [{ name: 'a', names: ['b'], action: 'SCMP_ACT_ALLOW' }],
        },
        { bounding: [] },
      ),
    /both 'name' \(a\) and 'names'/,
  );
  assert.throws(
    () =>
      convertSeccompProfile(
        {
          defaultAction: 'SCMP_ACT_ALLOW',
          architectures: ['SCMP_ARCH_X86'],
          archMap: [{ architecture: 'SCMP_ARCH_X86' }],
        },
        { bounding: [] },
      ),
    /'architectures' and 'archMap' were both given/,
  );
});

test('a hostile or broken profile file is refused with its path and the reason', () => {
  const write = (name: string, body: string) => {
    const p = join(dir, name);
    writeFileSync(p, body);
    return p;
  };
  assert.throws(
    () => seccompFor(write('garbage.json', 'nope'), []),
    /seccomp profile .*garbage\.json is not valid JSON/,
  );
  assert.throws(
    () => seccompFor(write('action.json', '{"defaultAction":"SCMP_ACT_SOMETHING"}'), []),
    /seccomp profile .*action\.json is invalid/,
  );
  // 2^64-1, as a Go profile may carry it: a JavaScript number would round it to 2^64.
  const huge =
    '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_ALLOW",' +
    '"args":[{"index":0,"value":18446744073709551615,"op":"SCMP_CMP_EQ"}]}]}';
  assert.throws(() => seccompFor(write('huge.json', huge), []), /huge\.json is invalid/);
  assert.throws(
    () => seccompFor(join(dir, 'absent.json'), []),
    /seccomp profile .*absent\.json does not exist/,
  );
});

test('a profile is parsed once per file version: a rewrite is seen, an unchanged file is not re-read', () => {
  const p = join(dir, 'cached.json');
  writeFileSync(p, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW' }));
  const first = seccompFor(p, []);
  assert.is(seccompFor(p, []), first, 'the same conversion, from the cache');
  writeFileSync(p, JSON.stringify({ defaultAction: 'SCMP_ACT_LOG' }));
  utimesSync(p, new Date(), new Date(Date.now() + 5000));
  assert.is(seccompFor(p, []).defaultAction, 'SCMP_ACT_LOG');
});

test('--security-opt, --pids-limit and --annotation parsing', () => {
  assert.equal(parseSecurityOpts([]), {});
  assert.equal(parseSecurityOpts(['seccomp=unconfined', 'no-new-privileges']), {
    seccompProfile: 'unconfined',
    noNewPrivileges: true,
  });
  assert.equal(parseSecurityOpts(['seccomp=/a/../p.json', 'no-new-privileges=false']), {
    seccompProfile: '/p.json',
    noNewPrivileges: false,
  });
  assert.throws(() => parseSecurityOpts(['seccomp=p.json']), /must be an absolute path/);
  assert.throws(() => parseSecurityOpts(['label=disable']), /--security-opt label=disable: not supported/);
  assert.throws(() => parseSecurityOpts(['seccomp=']), /not supported/);
  assert.is(parsePidsLimit('100'), 100);
  assert.is(parsePidsLimit('-1'), -1);
  assert.throws(() => parsePidsLimit('lots'), /--pids-limit lots: use a number/);
  assert.throws(() => parsePidsLimit('-2'), /use a number/);
  assert.equal(parseAnnotation('a=b=c'), ['a', 'b=c']);
  assert.throws(() => parseAnnotation('=x'), /--annotation =x: use KEY=VALUE/);
});

test('the pids controller: v1 for runc on a hybrid host, cgroup2 for crun, both for an unknown runtime', () => {
  const root = (name: string, files: Record<string, string>) => {
    const r = join(dir, name);
    for (const [f, body] of Object.entries(files)) {
      mkdirSync(join(r, f, '..'), { recursive: true });
      writeFileSync(join(r, f), body);
    }
    return r;
  };
  const hybrid = root('hybrid', { 'pids/tasks': '', 'unified/cgroup.controllers': '' });
  assert.ok(pidsControllerAvailable('runc', hybrid));
  assert.not.ok(pidsControllerAvailable('crun', hybrid));
  assert.not.ok(pidsControllerAvailable(undefined, hybrid));
  const v2 = root('v2', { 'cgroup.controllers': 'cpuset cpu io memory pids\n' });
  assert.ok(pidsControllerAvailable('crun', v2));
  assert.ok(pidsControllerAvailable('runc', v2));
  assert.ok(pidsControllerAvailable(undefined, v2));
  assert.is(pidsLimit(-1, 'runc'), undefined);
  assert.is(pidsLimit(0), undefined);
});

test.run();
