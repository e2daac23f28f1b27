// The seccomp filter strata precompiles for crun (src/spec/seccomp-bpf.ts) is byte for byte the
// one crun 1.8 compiles itself: compared with the seccomp.bpf crun writes into its state
// directory for the same linux.seccomp (real crun, `crun create`, then delete). The behaviour of
// the precompiled path (EPERM probes under crun) is test/security/seccomp.test.ts, whose crun
// bundles now carry the annotation.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { native } from '../../src/native-addon.js';
import { SECCOMP_BPF_ANNOTATION } from '../../src/spec/annotations.js';
import { writeBundle } from '../../src/spec/bundle.js';
import { buildCapabilities } from '../../src/spec/capabilities.js';
import type { RunOptions } from '../../src/spec/options.js';
import { DEFAULT_SECCOMP_PROFILE, seccompFor, type LinuxSeccomp } from '../../src/spec/seccomp.js';
import { precompileSeccomp, seccompCalls } from '../../src/spec/seccomp-bpf.js';
import type { RuntimeConfig } from '../../src/schema/generated/runtime-config.js';
import { importImage } from '../../src/store/import.js';
import { openStore } from '../../src/store/store.js';
import { busyboxImage } from '../fixtures/images.js';
import { run } from '../fixtures/run.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-seccomp-bpf-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** The BPF crun itself compiles for `seccomp` (crun create in a cgroup2 namespace, then delete). */
async function crunCompiled(seccomp: LinuxSeccomp): Promise<Buffer> {
  const id = `strata-bpf-${process.pid}-${++n}`;
  const bundle = join(dir, 'bundle');
  if (!existsSync(bundle)) await run('cp', ['-a', (await busyboxImage()).umociBundle, bundle]);
  const cfg = JSON.parse(
    readFileSync(join((await busyboxImage()).umociBundle, 'config.json'), 'utf8'),
  ) as RuntimeConfig & {
    linux: { resources?: unknown; seccomp?: unknown };
  };
  delete cfg.linux.resources; // crun's device filter needs CAP_SYS_RESOURCE (docs/architecture.md#host-facts)
  cfg.linux.seccomp = seccomp;
  cfg.process!.args = ['/bin/true'];
  cfg.process!.terminal = false;
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(cfg));
  const root = join(dir, 'crun-root');
  const out = join(dir, `crun-${n}.bpf`);
  await run('unshare', [
    '-m',
    '--propagation',
    'private',
    'sh',
    '-c',
    'mount -t cgroup2 none /sys/fs/cgroup && crun --root "$1" create --bundle "$2" "$3" && cp "$1/$3/seccomp.bpf" "$4"; ' +
      'r=$?; crun --root "$1" delete --force "$3"; exit $r',
    'sh',
    root,
    bundle,
    id,
    out,
  ]);
  assert.not.ok(existsSync(join(root, id)), 'crun deleted its container');
  return readFileSync(out);
}

const defaultCaps = buildCapabilities(undefined, undefined, 0).bounding ?? [];

test('libseccomp is found; unknown syscalls are skipped (as crun does), unknown arches refused', () => {
  assert.match(native.seccompVersion() ?? '', /^\d+\.\d+\.\d+$/);
  const allow = 0x7fff0000;
  const bpf = native.seccompCompile(
    allow,
    ['x86_64'],
    [
      { action: 0x00050001, syscall: 'mkdir', args: [] },
      { action: 0x00050001, syscall: 'no_such_syscall', args: [] },
      { action: 0x00050001, syscall: 'personality', args: [0, 4, 8, 0] },
    ],
  );
  assert.ok(bpf.length > 0 && bpf.length % 8 === 0, 'whole sock_filter instructions');
  assert.equal(bpf.skipped, ['no_such_syscall']);
  assert.throws(
    () => native.seccompCompile(allow, ['vax'], []),
    (e: NodeJS.ErrnoException) => e.code === 'ESECCOMP' && /unknown architecture vax/.test(e.message),
  );
  assert.throws(
    () => native.seccompCompile(allow, [], [{ action: 1, syscall: 'mkdir', args: [0, 4] }]),
    /4 numbers/,
  );
});

test("crun's own rules: default-action rules skipped, a repeated argument index splits the rule", () => {
  const calls = seccompCalls({
    defaultAction: 'SCMP_ACT_ERRNO',
    architectures: ['SCMP_ARCH_X86_64'],
    syscalls: [
      { names: ['a', 'b'], action: 'SCMP_ACT_ERRNO' }, // = the default (EPERM): skipped
      { names: ['c'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
      {
        names: ['d'],
        action: 'SCMP_ACT_ALLOW',
        args: [
          { index: 0, value: 1, op: 'SCMP_CMP_EQ' },
          { index: 0, value: 2, valueTwo: 3, op: 'SCMP_CMP_MASKED_EQ' },
        ],
      },
    ],
  });
  assert.is(calls.defaultAction, 0x00050001);
  assert.equal(calls.arches, ['x86_64']);
  assert.equal(calls.rules, [
    { action: 0x00050026, syscall: 'c', args: [] },
    { action: 0x7fff0000, syscall: 'd', args: [0, 4, 1, 0] },
    { action: 0x7fff0000, syscall: 'd', args: [0, 7, 2, 3] },
  ]);
});

test("podman's default profile: strata's precompiled filter is byte for byte crun's", async () => {
  for (const caps of [defaultCaps, [...defaultCaps, 'CAP_SYS_ADMIN', 'CAP_SYS_PTRACE']]) {
    const seccomp = seccompFor(DEFAULT_SECCOMP_PROFILE, caps);
    const ours = Buffer.from(precompileSeccomp(seccomp) ?? '', 'base64');
    assert.ok(ours.length > 0);
    assert.ok(ours.equals(await crunCompiled(seccomp)), `same bytes for ${caps.length} capabilities`);
  }
});

test("a user's profile (default allow, errno rules, argument masks): same bytes as crun's", async () => {
  const seccomp: LinuxSeccomp = {
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [
      { names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
      {
        names: ['unshare'],
        action: 'SCMP_ACT_ERRNO',
        args: [{ index: 0, value: 0x10000000, valueTwo: 0x10000000, op: 'SCMP_CMP_MASKED_EQ' }],
      },
      { names: ['no_such_syscall', 'sysfs'], action: 'SCMP_ACT_KILL_PROCESS' },
    ],
  };
  const ours = Buffer.from(precompileSeccomp(seccomp) ?? '', 'base64');
  assert.ok(ours.equals(await crunCompiled(seccomp)));
});

test('what crun would refuse is left to crun: no precompiled filter', () => {
  assert.is(precompileSeccomp({ defaultAction: 'SCMP_ACT_NOPE' }), undefined);
  assert.is(
    precompileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_VAX'] }),
    undefined,
  );
  assert.is(
    precompileSeccomp({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['x'], action: 'SCMP_ACT_KILL', errnoRet: 1 }],
    }),
    undefined,
  );
});

test('bundles: crun and unknown runtimes get the annotation, runc does not; the store caches the filter; users cannot set it', async () => {
  const store = await openStore(join(dir, 'store'));
  await importImage(store, `oci:${(await busyboxImage()).ociLayout}:latest`, { name: 'busybox' });
  const annotationOf = async (run: RunOptions): Promise<string | undefined> => {
    const out = join(dir, `b-${++n}`);
    const { config } = await writeBundle({
      storeRoot: store.root,
      image: 'busybox',
      dir: out,
      socketPath: join(dir, 'sock'),
      hookPath: '/bin/true',
      run,
    });
    const written = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as RuntimeConfig;
    assert.equal(written.annotations, config.annotations);
    return written.annotations?.[SECCOMP_BPF_ANNOTATION];
  };
  const forCrun = await annotationOf({ runtime: 'crun' });
  assert.ok(forCrun !== undefined && Buffer.from(forCrun, 'base64').length % 8 === 0);
  assert.ok((await annotationOf({})) === forCrun, 'strata bundle: any runtime may run it');
  assert.is(await annotationOf({ runtime: 'runc' }), undefined, 'runc ignores it');
  assert.is(await annotationOf({ seccompProfile: 'unconfined' }), undefined);
  assert.is(
    await annotationOf({ annotations: { 'run.oci.seccomp_fail_unknown_syscall': '1' } }),
    undefined,
    "crun's own compile, which can fail on unknown syscalls as asked",
  );
  const cached = readdirSync(join(store.root, 'cache', 'seccomp'));
  assert.is(cached.length, 1);
  const cacheFile = join(store.root, 'cache', 'seccomp', cached[0]);
  const bpf = Buffer.from(forCrun, 'base64');
  assert.ok(readFileSync(cacheFile).subarray(32).equals(bpf), 'sha256 of the filter, then the filter');
  // Another process (a fresh object) reads it; a damaged file is compiled again, never handed to crun.
  const fresh = () => structuredClone(seccompFor(DEFAULT_SECCOMP_PROFILE, defaultCaps));
  assert.ok(precompileSeccomp(fresh(), store.root) === forCrun);
  for (const damage of [
    (f: Buffer) => f.subarray(0, f.length - 8), // whole instructions, one short
    (f: Buffer) => Buffer.concat([f.subarray(0, 40), Buffer.from([f[40] ^ 1]), f.subarray(41)]),
    () => Buffer.from('bad'),
  ]) {
    writeFileSync(cacheFile, damage(readFileSync(cacheFile)));
    assert.ok(precompileSeccomp(fresh(), store.root) === forCrun);
    assert.ok(readFileSync(cacheFile).subarray(32).equals(bpf), 'rewritten');
  }

  const refused = await annotationOf({ annotations: { [SECCOMP_BPF_ANNOTATION]: 'AAAA' } }).then(
    () => undefined,
    (err: Error) => err,
  );
  assert.match(refused?.message ?? 'not refused', /strata sets it itself/);
});

test.run();
