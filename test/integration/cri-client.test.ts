// The CRI test client against the private containerd with the stock runc runtime handler: a
// host-network pod's whole life (RunPodSandbox, CreateContainer, StartContainer, ExecSync,
// StopContainer, RemovePodSandbox), then nothing left (the harness's close()).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { CONTAINERD_IMAGES, Containerd, K8S_NAMESPACE } from './containerd-harness.js';
import { CriClient, CriError, commandContainer, hostNetworkPod, removePod, startPod } from './cri-client.js';

let c: Containerd;
let cri: CriClient;

test.before(async () => {
  c = await Containerd.start();
  await c.importTestImages(['busybox'], [K8S_NAMESPACE]);
  cri = new CriClient(c.address);
});

test.after(async () => {
  cri?.close();
  await c?.close();
});

test('Version names containerd and CRI v1', async () => {
  const v = await cri.version();
  assert.is(v.runtimeName, 'containerd');
  assert.is(v.runtimeApiVersion, 'v1');
});

test('a pod with the runc handler: run, create, start, exec, stop, remove', async () => {
  const logs = join(c.dir, 'pod-logs');
  mkdirSync(logs);
  const pod = hostNetworkPod(logs);
  const { podId, containerId } = await startPod(
    cri,
    pod,
    commandContainer('sleeper', CONTAINERD_IMAGES.busybox, ['sleep', '1000']),
    'runc',
  );
  c.track(K8S_NAMESPACE, podId); // the runc shim serves a pod's containers from one socket
  try {
    assert.is((await cri.podSandboxStatus(podId)).state, 'SANDBOX_READY');
    assert.is((await cri.containerStatus(containerId)).state, 'CONTAINER_RUNNING');
    const ok = await cri.execSync(containerId, ['sh', '-c', 'echo out; echo err >&2']);
    assert.is(ok.exitCode, 0);
    assert.is(ok.stdout.toString(), 'out\n');
    assert.is(ok.stderr.toString(), 'err\n');
    const bad = await cri.execSync(containerId, ['sh', '-c', 'exit 7']);
    assert.is(bad.exitCode, 7);
    await cri.stopContainer(containerId, 1);
    const st = await cri.containerStatus(containerId);
    assert.is(st.state, 'CONTAINER_EXITED');
    assert.is(st.exitCode, 128 + 3, "the image's StopSignal (SIGQUIT) ended it");
  } finally {
    await removePod(cri, podId);
  }
  assert.equal(await cri.listPodSandbox(), []);
  assert.equal(await cri.listContainers(), []);
});

test('an unknown container: a gRPC NotFound status', async () => {
  try {
    await cri.containerStatus('no-such-container');
    assert.unreachable();
  } catch (err) {
    assert.instance(err, CriError);
    assert.is((err as CriError).code, 5);
  }
});

test.run();
