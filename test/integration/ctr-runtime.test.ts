// containerd's stock runc shim driving strata-runtime: `ctr run --runc-binary strata-runtime`
// against a private containerd (its own root, state and sockets under a temp dir; CRI off). The
// shim calls strata-runtime exactly as it calls runc (--root, --log log.json --log-format json,
// create --bundle ... --pid-file ...); a bundle annotated with org.strata.image is served from
// strata's store, one without runs on containerd's own snapshot. Nothing is left afterwards.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { runtimeExecutable } from '../../src/executables.js';
import { busyboxImage } from '../fixtures/images.js';
import { Containerd } from './containerd-harness.js';
import { assertNoLeaks, closeDaemonEnv, openDaemonEnv, type DaemonEnv, type RunResult } from './harness.js';

let d: DaemonEnv;
let c: Containerd;
let wrapper: string;
const IMAGE = 'localhost/strata-rt/busybox:latest';

const ctr = (args: string[]): Promise<RunResult> => c.ctr(args);

test.before(async () => {
  d = await openDaemonEnv(['busybox']);
  c = await Containerd.start({ cri: false });
  wrapper = join(c.dir, 'strata-runtime');
  writeFileSync(
    wrapper,
    `#!/bin/sh\nexport STRATA_SOCKET=${d.env.socket}\nexec ${runtimeExecutable()} "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  await c.importArchive((await busyboxImage()).ociArchive, IMAGE);
});

test.after(async () => {
  try {
    await c?.close();
  } finally {
    await closeDaemonEnv(d);
  }
});

async function assertNothingLeft(id: string): Promise<void> {
  c.track('default', id);
  assert.equal(await c.containers(), [], 'containerd keeps no container');
  assert.equal(await c.tasks(), [], 'containerd keeps no task');
  const left = c.leftovers();
  assert.equal(left.mounts, [], 'nothing mounted under containerd root/state');
  assert.equal(left.sockets, [], 'no shim socket left');
  await assertNoLeaks(d.env, d.mountsBefore);
}

test('ctr run --runc-binary strata-runtime: an annotated bundle is served from the store', async () => {
  const r = await ctr([
    'run',
    '--rm',
    '--runc-binary',
    wrapper,
    '--annotation',
    'org.strata.image=busybox',
    IMAGE,
    'rt-ctr-1',
    '/bin/sh',
    '-c',
    'grep " / " /proc/self/mountinfo; head -1 /etc/passwd; exit 3',
  ]);
  assert.is(r.code, 3, r.stderr);
  assert.match(r.stdout, / \/ \/ rw,[^\n]* - overlay strata /);
  assert.match(r.stdout, 'root:x:0:0:root:/root:/bin/sh');
  await assertNothingLeft('rt-ctr-1');
});

test("ctr run --runc-binary strata-runtime: without the annotation, containerd's own rootfs", async () => {
  const r = await ctr([
    'run',
    '--rm',
    '--runc-binary',
    wrapper,
    IMAGE,
    'rt-ctr-2',
    '/bin/sh',
    '-c',
    'grep " / " /proc/self/mountinfo',
  ]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, / \/ \/ [^\n]* - overlay overlay [^\n]*snapshots/);
  await assertNothingLeft('rt-ctr-2');
});

test.run();
