// containerd's stock runc shim driving strata-runtime, against a private containerd
// (containerd-harness.ts): `ctr run --runc-binary strata-runtime`, and the CRI plugin with a
// runtime handler whose runc options say `BinaryName = strata-runtime` (a pod and a container
// through the CRI client). The shim calls strata-runtime exactly as it calls runc (--root, --log
// log.json --log-format json, create --bundle ... --pid-file ...); a bundle annotated with
// org.strata.image is served from strata's store, one without (the pod's pause container, a plain
// `ctr run`) runs on containerd's own snapshot. Nothing is left afterwards: the harness's close()
// checks containerd's side, assertNoLeaks strata's.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { runtimeExecutable } from '../../src/executables.js';
import { resolveImageRecord } from '../../src/store/records.js';
import { removeRef, setRef } from '../../src/store/refs.js';
import { CONTAINERD_IMAGES, Containerd, K8S_NAMESPACE } from './containerd-harness.js';
import { CriClient, commandContainer, hostNetworkPod, removePod, startPod } from './cri-client.js';
import { assertNoLeaks, closeDaemonEnv, eventually, openDaemonEnv, type DaemonEnv } from './harness.js';

let d: DaemonEnv;
let c: Containerd;
let cri: CriClient;
let wrapper: string;
const IMAGE = CONTAINERD_IMAGES.busybox;
/** The CRI runtime handler: containerd's runc shim with strata-runtime as its runc. */
const HANDLER = 'strata-runc';

test.before(async () => {
  d = await openDaemonEnv(['busybox']);
  // The shim gives its runtime containerd's env, not ours: the wrapper names the test daemon.
  wrapper = join(d.env.dir, 'strata-runtime');
  writeFileSync(
    wrapper,
    `#!/bin/sh\nexport STRATA_SOCKET=${d.env.socket}\nexec ${runtimeExecutable()} "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  c = await Containerd.start({
    runtimes: {
      [HANDLER]: {
        runtimeType: 'io.containerd.runc.v2',
        options: [`BinaryName = ${JSON.stringify(wrapper)}`],
        containerAnnotations: ['org.strata.*'],
      },
    },
  });
  await c.importTestImages(['busybox'], ['default', K8S_NAMESPACE]);
  cri = new CriClient(c.address);
});

test.after(async () => {
  try {
    cri?.close();
    await c?.close();
  } finally {
    await closeDaemonEnv(d);
  }
});

async function assertNothingLeft(): Promise<void> {
  assert.equal(await c.containers(), [], 'containerd keeps no container');
  await assertNoLeaks(d.env, d.mountsBefore);
}

test('ctr run --runc-binary strata-runtime: an annotated bundle is served from the store', async () => {
  c.track('default', 'rt-ctr-1');
  const r = await c.ctr([
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
  await assertNothingLeft();
});

test("ctr run --runc-binary strata-runtime: without the annotation, containerd's own rootfs", async () => {
  c.track('default', 'rt-ctr-2');
  const r = await c.ctr([
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
  await assertNothingLeft();
});

/** A pod through the CRI handler whose one container strata serves, found by `how`. */
async function criServed(name: string, annotations: Record<string, string>, how: string): Promise<void> {
  const logs = join(c.dir, `pod-logs-${name}`);
  mkdirSync(logs);
  const pod = hostNetworkPod(logs);
  const container = {
    ...commandContainer(name, IMAGE, ['sh', '-c', 'grep " / " /proc/self/mountinfo; exec sleep 1000']),
    annotations,
  };
  const { podId, containerId } = await startPod(cri, pod, container, HANDLER);
  c.track(K8S_NAMESPACE, podId); // the runc shim serves a pod's containers from one socket
  try {
    assert.is((await cri.containerStatus(containerId)).state, 'CONTAINER_RUNNING');
    const exec = await cri.execSync(containerId, [
      'sh',
      '-c',
      'head -1 /etc/passwd; grep " / " /proc/self/mountinfo',
    ]);
    assert.is(exec.exitCode, 0, exec.stderr.toString());
    const out = exec.stdout.toString();
    assert.ok(out.startsWith('root:x:0:0:root:/root:/bin/sh\n'), out);
    // The root is strata's overlay (mountinfo lists it after the mounts made before the hook).
    assert.match(out, /^\d+ \d+ [\d:]+ \/ \/ rw,[^\n]* - overlay strata /m);
    const log = readLog(join(logs, `${name}.log`));
    assert.ok(await eventually(() => / - overlay strata /.test(readLog(join(logs, `${name}.log`)))), log);
    assert.match(readFileSync(d.env.logFile, 'utf8'), `container ${containerId}: serving image`);
    assert.match(readFileSync(d.env.logFile, 'utf8'), how);
    await cri.stopContainer(containerId, 1);
    assert.is((await cri.containerStatus(containerId)).state, 'CONTAINER_EXITED');
  } finally {
    await removePod(cri, podId);
  }
  assert.equal(await cri.listPodSandbox(), []);
  await assertNothingLeft();
}

test('CRI, runc options BinaryName = strata-runtime: a pod whose container root strata serves', async () => {
  await criServed('served', { 'org.strata.image': 'busybox' }, '(annotation org.strata.image)');
});

test("CRI: no strata annotation, the image found by containerd's io.kubernetes.cri.image-name", async () => {
  // strata's store knows the image by the name the kubelet uses (as after `strata pull IMAGE`).
  const { manifestDigest } = await resolveImageRecord(d.env.storeRoot, 'busybox');
  await setRef(d.env.storeRoot, IMAGE, manifestDigest);
  try {
    await criServed('by-name', {}, `(annotation io.kubernetes.cri.image-name=${IMAGE})`);
  } finally {
    await removeRef(d.env.storeRoot, IMAGE);
  }
});

function readLog(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

test.run();
