// The bundle-based run tests, once per runtime (runc.test.ts, crun.test.ts): busybox and Debian,
// read-only and writable roots, and after each run nothing left — no host mount, no served
// container (the FUSE session saw ENODEV), no lease.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import {
  assertNoLeaks,
  bundle,
  closeDaemonEnv,
  openDaemonEnv,
  runContainer,
  type DaemonEnv,
  type Env,
  type Runtime,
} from './harness.js';

export function runtimeSuite(runtime: Runtime): void {
  let d: DaemonEnv;
  let env: Env;
  let n = 0;

  test.before(async () => {
    d = await openDaemonEnv(['busybox', 'debian']);
    env = d.env;
  });

  test.after(() => closeDaemonEnv(d));

  async function run(image: string, readOnly: boolean, script: string) {
    const id = `${runtime}-${image}-${++n}`;
    // As root: the busybox image's own user (1000) would get EACCES before EROFS.
    const dir = await bundle(env, image, {
      entrypoint: ['/bin/sh'],
      command: ['-c', script],
      readOnly,
      user: '0',
    });
    const r = await runContainer(runtime, dir, id);
    // Afterwards: the container's namespace is gone, so is its mount; the daemon saw ENODEV.
    await assertNoLeaks(env, d.mountsBefore);
    const log = readFileSync(env.logFile, 'utf8');
    // Whichever came first (poststop or the end of the session) started the release, the
    // session itself must have ended by the kernel unmounting it (ENODEV), not by an abort.
    assert.match(log, new RegExp(`container ${id}: released \\([^\\n]*session unmounted`));
    return r;
  }

  // The root as the container sees it: "fstype source".
  const rootMount = `awk '$5 == "/" { for (i = 7; i <= NF; i++) if ($i == "-") print $(i + 1), $(i + 2) }' /proc/self/mountinfo`;
  const probe =
    'test -r /proc/self/status && test -c /dev/null && test -d /sys/kernel && ' +
    'grep -q "^Name:" /proc/self/status && echo probes-ok';

  test(`${runtime}: busybox, read-only root: image files, /proc /dev /sys, EROFS, exit code`, async () => {
    const r = await run(
      'busybox',
      true,
      `head -1 /etc/passwd; ${rootMount}; ${probe}; (echo x > /new) 2>&1; exit 7`,
    );
    assert.match(r.stdout, `fuse.strata strata-ctr:${runtime}-busybox-`);
    assert.is(r.code, 7, r.stderr);
    assert.match(r.stdout, 'root:x:0:0:root:/root:/bin/sh');
    assert.match(r.stdout, 'probes-ok');
    assert.match(r.stdout, 'Read-only file system');
  });

  test(`${runtime}: busybox, writable root: writes succeed, /etc/hosts is a file placeholder`, async () => {
    const r = await run(
      'busybox',
      false,
      `${rootMount}; echo written > /new && cat /new && cat /etc/hostname && ${probe}`,
    );
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, 'overlay strata\n');
    assert.match(r.stdout, 'written\nstrata\nprobes-ok');
  });

  test(`${runtime}: Debian, read-only root`, async () => {
    const r = await run('debian', true, `cat /etc/os-release; ${probe}; touch /etc/x 2>&1; exit 0`);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"');
    assert.match(r.stdout, 'probes-ok');
    assert.match(r.stdout, 'Read-only file system');
  });

  test(`${runtime}: Debian, writable root`, async () => {
    const r = await run(
      'debian',
      false,
      `echo hi > /etc/motd.strata && cat /etc/motd.strata && dpkg-query -W -f='\${Package}\\n' bash && ${probe}`,
    );
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, 'hi\nbash\nprobes-ok');
  });

  test.run();
}
