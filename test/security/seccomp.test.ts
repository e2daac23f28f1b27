// Issue 7 item 3: containers run under podman's default seccomp profile (Seccomp: 2), with
// --security-opt seccomp=unconfined|FILE and no-new-privileges, and with podman's pids limit where
// the runtime's cgroups can enforce it — with real crun and runc, through bundles and `strata run`.
// A static probe built here calls syscalls the default profile blocks and that need no privilege,
// so unconfined they succeed: sysfs and vmsplice (listed with EPERM) and add_key (not listed: the
// profile's default action, ENOSYS).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { cliArgv } from '../../src/executables.js';
import { pidsControllerAvailable } from '../../src/spec/defaults.js';
import type { RuntimeConfig } from '../../src/schema/generated/runtime-config.js';
import type { LinuxSeccomp } from '../../src/spec/seccomp.js';
import type { RunOptions } from '../../src/spec/options.js';
import {
  assertNoLeaks,
  assertRunsLeftNothing,
  bundle,
  closeDaemonEnv,
  openDaemonEnv,
  runCollect,
  runContainer,
  type DaemonEnv,
  type Runtime,
} from '../integration/harness.js';

const PROBE_C = `#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
static void report(const char *name, long r) { printf("%s %s\\n", name, r < 0 ? strerror(errno) : "ok"); }
int main(void) {
  report("sysfs", syscall(SYS_sysfs, 3));
  int p[2];
  if (pipe(p) != 0) return 2;
  char b = 'x';
  struct iovec iov = {&b, 1};
  report("vmsplice", vmsplice(p[1], &iov, 1, 0));
  report("add_key", syscall(SYS_add_key, "user", "strata-probe", "v", 1, -2));
  return 0;
}
`;

/** A profile of the user's own: everything allowed but mkdir/mkdirat (EPERM). */
const NO_MKDIR = {
  defaultAction: 'SCMP_ACT_ALLOW',
  syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
};

let d: DaemonEnv;
let probeDir: string;
let noMkdir: string;
let runDir: string;

test.before(async () => {
  d = await openDaemonEnv(['busybox']);
  probeDir = join(d.env.dir, 'probe');
  mkdirSync(probeDir);
  writeFileSync(join(probeDir, 'probe.c'), PROBE_C);
  execFileSync('gcc', ['-static', '-O2', '-o', join(probeDir, 'probe'), join(probeDir, 'probe.c')]);
  noMkdir = join(d.env.dir, 'no-mkdir.json');
  writeFileSync(noMkdir, JSON.stringify(NO_MKDIR));
  runDir = join(d.env.dir, 'rundir');
});

test.after(() => closeDaemonEnv(d));

const STATUS = `grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\\t'`;

let n = 0;
async function runIn(runtime: Runtime, script: string, run: RunOptions = {}) {
  const dir = await bundle(d.env, 'busybox', {
    entrypoint: ['/bin/sh', '-c'],
    command: [script],
    user: '0',
    mounts: [{ type: 'bind', source: probeDir, destination: '/probe', options: ['ro', 'rprivate', 'rbind'] }],
    runtime,
    ...run,
  });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as RuntimeConfig;
  const r = await runContainer(runtime, dir, `seccomp-${runtime}-${++n}`);
  await assertNoLeaks(d.env, d.mountsBefore);
  return { r, config, seccomp: config.linux?.seccomp as LinuxSeccomp | undefined };
}

for (const runtime of ['crun', 'runc'] as const) {
  test(`${runtime}: the default profile filters (Seccomp: 2) and blocks what it lists`, async () => {
    const { r, seccomp } = await runIn(runtime, `${STATUS}; /probe/probe`);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, 'NoNewPrivs:0\nSeccomp:2\n', "podman's default: no no_new_privs");
    assert.match(r.stdout, 'sysfs Operation not permitted\n');
    assert.match(r.stdout, 'vmsplice Operation not permitted\n');
    assert.match(r.stdout, 'add_key Function not implemented\n');
    assert.is(seccomp?.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(seccomp?.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  });

  test(`${runtime}: seccomp=unconfined runs without a filter; the probe's calls succeed`, async () => {
    const { r, seccomp } = await runIn(runtime, `${STATUS}; /probe/probe`, { seccompProfile: 'unconfined' });
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, 'Seccomp:0\n');
    assert.match(r.stdout, 'sysfs ok\nvmsplice ok\nadd_key ok\n');
    assert.is(seccomp, undefined);
  });

  test(`${runtime}: seccomp=FILE applies the user's profile; no-new-privileges sets NoNewPrivs`, async () => {
    const { r } = await runIn(runtime, `${STATUS}; mkdir /dev/shm/d 2>&1; /probe/probe`, {
      seccompProfile: noMkdir,
      noNewPrivileges: true,
    });
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, 'NoNewPrivs:1\nSeccomp:2\n');
    assert.match(r.stdout, "mkdir: can't create directory '/dev/shm/d': Operation not permitted");
    assert.match(r.stdout, 'sysfs ok\n', 'only what that profile lists is blocked');
  });
}

test('runc: the pids limit is set by default (2048) and enforced (--pids-limit)', async () => {
  if (!pidsControllerAvailable('runc')) {
    console.log('runc has no pids controller on this host: skipped');
    return;
  }
  const dflt = await runIn('runc', 'true');
  assert.equal(dflt.config.linux?.resources, { pids: { limit: 2048 } });
  // runc's own init (a Go process, several threads) and the createContainer hook it forks count
  // too, so the limit leaves them room; 40 background sleeps cannot all start under 20.
  const { r, config } = await runIn('runc', 'i=0; while [ $i -lt 40 ]; do sleep 2 & i=$((i+1)); done; wait', {
    pidsLimit: 20,
  });
  assert.equal(config.linux?.resources, { pids: { limit: 20 } });
  assert.match(r.stdout + r.stderr, /can't fork|Resource temporarily unavailable/, r.stdout + r.stderr);
});

test('crun: no pids limit where its cgroup2 hierarchy has no pids controller; asking is a clear error', async () => {
  if (pidsControllerAvailable('crun')) {
    const { config } = await runIn('crun', 'true', { runtime: 'crun' });
    assert.equal(config.linux?.resources, { pids: { limit: 2048 } });
    return;
  }
  const { r, config } = await runIn('crun', 'true', { runtime: 'crun' });
  assert.is(r.code, 0, r.stderr);
  assert.is(config.linux?.resources, undefined);
  try {
    await bundle(d.env, 'busybox', { command: ['true'], pidsLimit: 5, runtime: 'crun' });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /crun cannot enforce a pids limit on this host/);
  }
});

function strata(args: string[]) {
  const [cmd, ...rest] = cliArgv(args);
  const env = {
    ...process.env,
    STRATA_ROOT: d.env.storeRoot,
    STRATA_SOCKET: d.env.socket,
    STRATA_RUN_DIR: runDir,
  };
  return runCollect(cmd, rest, { env });
}

for (const runtime of ['crun', 'runc'] as const) {
  test(`${runtime}: strata run takes --security-opt`, async () => {
    const dflt = await strata(['run', '--rm', '--runtime', runtime, 'busybox', STATUS]);
    assert.is(dflt.code, 0, dflt.stderr);
    assert.is(dflt.stdout, 'NoNewPrivs:0\nSeccomp:2\n');
    const opts = await strata([
      'run',
      '--rm',
      '--runtime',
      runtime,
      '--security-opt',
      'seccomp=unconfined',
      '--security-opt=no-new-privileges',
      'busybox',
      STATUS,
    ]);
    assert.is(opts.code, 0, opts.stderr);
    assert.is(opts.stdout, 'NoNewPrivs:1\nSeccomp:0\n');
    await assertRunsLeftNothing(d, runDir);
  });
}

test('strata run: an unsupported or malformed --security-opt is refused before anything runs', async () => {
  const bad = await strata(['run', '--rm', '--security-opt', 'apparmor=unconfined', 'busybox', 'true']);
  assert.is.not(bad.code, 0);
  assert.match(bad.stderr, /--security-opt apparmor=unconfined: not supported/);
  const rel = await strata(['run', '--rm', '--security-opt', 'seccomp=prof.json', 'busybox', 'true']);
  assert.match(rel.stderr, /must be an absolute path/);
  const missing = await strata([
    'run',
    '--rm',
    '--security-opt',
    `seccomp=${d.env.dir}/nope.json`,
    'busybox',
    'true',
  ]);
  assert.match(missing.stderr, /seccomp profile .*nope\.json does not exist/);
  await assertRunsLeftNothing(d, runDir);
});

test('strata bundle takes the same options', async () => {
  const dir = join(d.env.dir, 'cli-bundle');
  const r = await strata([
    'bundle',
    'busybox',
    dir,
    '--security-opt',
    `seccomp=${noMkdir}`,
    '--security-opt',
    'no-new-privileges',
    '--pids-limit',
    '-1',
    '--annotation',
    'com.example/x=1',
  ]);
  assert.is(r.code, 0, r.stderr);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as RuntimeConfig;
  assert.is(config.process?.noNewPrivileges, true);
  assert.equal((config.linux?.seccomp as LinuxSeccomp).syscalls, [
    { names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
  ]);
  assert.is(config.linux?.resources, undefined);
  assert.is(config.annotations?.['com.example/x'], '1');
});

test.run();
