// Real podman through hooks.d: `strata hooks install --dir D` and `podman --hooks-dir D run
// --rootfs EMPTY --annotation org.strata.image=IMG`. The createContainer hook covers the empty
// rootfs with the stored image inside the container's namespace: the output comes from the image,
// the exit code propagates, and afterwards nothing is mounted, leased or served. podman needs
// CONTAINERS_CONF with default_ulimits (docs/architecture.md#host-facts), and runc (crun refuses the hybrid
// cgroups).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { installHooks } from '../../src/spec/hooks-d.js';
import { daemonArgv, hookExecutable } from '../../src/executables.js';
import { unmountAll } from '../fixtures/mounts.js';
import {
  assertNoLeaks,
  closeDaemonEnv,
  eventually,
  installHooksCli,
  isAlive,
  openDaemonEnv,
  otherDaemonEnv,
  runCollect,
  type DaemonEnv,
  type Env,
} from './harness.js';

let d: DaemonEnv;
let env: Env;
let hooksDir: string;
let emptyRoot: string;

test.before(async () => {
  d = await openDaemonEnv(['busybox']);
  env = d.env;
  mkdirSync(join(env.dir, 'podman'));
  writeFileSync(
    join(env.dir, 'podman', 'containers.conf'),
    '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n',
  );
  emptyRoot = join(env.dir, 'empty-rootfs');
  mkdirSync(emptyRoot);
  hooksDir = join(env.dir, 'hooks.d');
  const r = installHooksCli(env, hooksDir);
  assert.is(r.status, 0, r.stderr);
});

test.after(async () => {
  try {
    podmanSync(['system', 'reset', '--force']);
    await unmountAll(join(env.dir, 'podman'));
  } finally {
    await closeDaemonEnv(d);
  }
});

function podmanArgs(args: string[]): string[] {
  const p = join(env.dir, 'podman');
  return ['--root', join(p, 'root'), '--runroot', join(p, 'run'), ...args];
}

const podmanEnv = () => ({ ...process.env, CONTAINERS_CONF: join(env.dir, 'podman', 'containers.conf') });

function podmanSync(args: string[]) {
  return spawnSync('podman', podmanArgs(args), { encoding: 'utf8', env: podmanEnv() });
}

function podmanRun(hooks: string, extra: string[], cmd: string[]) {
  const args = podmanArgs([
    '--hooks-dir',
    hooks,
    'run',
    '--rm',
    '--runtime',
    'runc',
    '--annotation',
    'org.strata.image=busybox',
    ...extra,
    '--rootfs',
    emptyRoot,
    ...cmd,
  ]);
  return runCollect('podman', args, { env: podmanEnv() });
}

async function assertNothingLeft(e: Env): Promise<void> {
  await assertNoLeaks(e, d.mountsBefore, { served: existsSync(e.socket) });
  assert.is(podmanSync(['ps', '-aq']).stdout, '', 'podman keeps no container');
}

test('podman run --rootfs EMPTY: the stored image, its exit code, nothing left', async () => {
  const r = await podmanRun(hooksDir, [], ['/bin/sh', '-c', 'cat /etc/passwd; exit 5']);
  assert.is(r.code, 5, r.stderr);
  // The test image's own user: only the stored image has it, the empty rootfs has no /etc/passwd.
  assert.match(r.stdout, 'app:x:1000:1000:strata test user:/home/app:/bin/sh');
  assert.not.ok(existsSync(join(emptyRoot, 'etc', 'passwd')));
  console.log(`    podman run --rm (runc, hooks.d): ${r.ms} ms`);
  await assertNothingLeft(env);
  const log = readFileSync(env.logFile, 'utf8');
  assert.match(log, /root handed to createContainer \(rootfs [^)]*empty-rootfs\)/);
  assert.match(log, /released \(FUSE session ended: unmounted \(ENODEV\)/);
});

test('podman run --read-only: the image read-only, writes to /tmp tmpfs work', async () => {
  const r = await podmanRun(
    hooksDir,
    ['--read-only'],
    ['/bin/sh', '-c', 'touch /x 2>&1; echo t > /tmp/t && cat /tmp/t && head -1 /etc/passwd'],
  );
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, 'Read-only file system');
  assert.match(r.stdout, 't\nroot:x:0:0:root:/root:/bin/sh');
  await assertNothingLeft(env);
});

test('no daemon running: the hook starts one under conmon, podman completes, the daemon leaves', async () => {
  const e = otherDaemonEnv(env, 'auto');
  const dir = join(env.dir, 'hooks-auto.d');
  installHooks(dir, {
    hookPath: hookExecutable(),
    socketPath: e.socket,
    daemonArgv: daemonArgv({ storeRoot: e.storeRoot, socketPath: e.socket, logFile: e.logFile }),
  });
  const r = await podmanRun(dir, [], ['/bin/sh', '-c', 'head -1 /etc/passwd; exit 3']);
  assert.is(r.code, 3, r.stderr);
  assert.is(r.stdout, 'root:x:0:0:root:/root:/bin/sh\n');
  assert.ok(r.ms < 8000, `podman run took ${r.ms} ms`);
  const pid = Number(/\(pid (\d+)\) serving/.exec(readFileSync(e.logFile, 'utf8'))?.[1]);
  assert.ok(pid > 0, 'a daemon was started');
  assert.ok(await eventually(() => !isAlive(pid), 6000), 'the on-demand daemon left once idle');
  assert.not.ok(existsSync(e.socket));
  assert.match(readFileSync(e.logFile, 'utf8'), 'stopping (idle');
  await assertNothingLeft(e);
});

test.run();
