// Kubernetes' path through strata: a private containerd with CRI (host-network pods, the catatonit
// pause image) whose runtime handler `strata` is io.containerd.strata.v2, driven by the CRI client.
// The store starts empty: the pod's images are in containerd's content store only, and the daemon
// imports them on Create (src/shim/containerd-images.ts) and serves the roots from strata's store.
// Also with `ctr run`: concurrent Creates of one image import it once; an image whose blob is
// corrupt in containerd's store is refused by the import and runs on containerd's snapshot, with a
// log line. Every test checks that nothing is left.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { listImages } from '../../src/store/records.js';
import { busyboxImage } from '../fixtures/images.js';
import {
  CONTAINERD_IMAGES,
  Containerd,
  K8S_NAMESPACE,
  PAUSE_IMAGE,
} from '../integration/containerd-harness.js';
import {
  CriClient,
  commandContainer,
  hostNetworkPod,
  removePod,
  startPod,
} from '../integration/cri-client.js';
import { eventually, hostMounts, makeEnv, type Env } from '../integration/harness.js';
import { assertRootsReleased, childrenOf, closeShimTests, daemonPid, RUNTIME } from './containerd.js';

let env: Env;
let c: Containerd;
let cri: CriClient;
let mountsBefore: string[];

test.before(async () => {
  env = await makeEnv([]);
  mountsBefore = hostMounts(env);
  c = await Containerd.start({ strata: env });
  await c.importTestImages(['busybox'], [K8S_NAMESPACE]);
  cri = new CriClient(c.address);
});

test.after(() =>
  closeShimTests(env, async () => {
    cri?.close();
    await c?.close();
  }),
);

const daemonLog = (): string => (existsSync(env.logFile) ? readFileSync(env.logFile, 'utf8') : '');

/** Nothing of the namespace's tasks left: mounts, runc state, task dirs, leases, daemon children. */
async function assertNothingLeft(ns: string): Promise<void> {
  await assertRootsReleased(env, mountsBefore);
  for (const sub of ['runc', 'tasks']) {
    const d = join(env.dir, 'run', 'shim', ns, sub);
    assert.equal(existsSync(d) ? readdirSync(d) : [], [], `no ${sub} state in ${ns}`);
  }
  const pid = await daemonPid(env);
  if (pid) {
    assert.ok(
      await eventually(() => childrenOf(pid).length === 0),
      `daemon children: ${childrenOf(pid).join(' ')}`,
    );
  }
  assert.equal(await c.tasks(), [], 'containerd lists no task');
}

/** The line of `/` in a mountinfo text. */
const rootLine = (mountinfo: string): string =>
  mountinfo.split('\n').find((l) => l.split(' ')[4] === '/') ?? '';

test('a pod with runtime handler strata: roots served by strata, exec, CRI log, stop, remove', async () => {
  const logs = join(c.dir, 'pod-logs');
  mkdirSync(logs);
  const { podId, containerId } = await startPod(
    cri,
    hostNetworkPod(logs),
    commandContainer('app', CONTAINERD_IMAGES.busybox, [
      'sh',
      '-c',
      'echo hello-from-app; grep " / " /proc/self/mountinfo; exec sleep 1000',
    ]),
    'strata',
  );
  try {
    assert.is((await cri.podSandboxStatus(podId)).state, 'SANDBOX_READY');
    assert.is((await cri.containerStatus(containerId)).state, 'CONTAINER_RUNNING');
    assert.equal(
      (await cri.listPodSandbox()).map((p) => p.runtimeHandler),
      ['strata'],
      'the pod runs with the strata handler',
    );
    // Both the pause container and the app were created by strata's Task service, roots served.
    const log = daemonLog();
    assert.match(log, `task k8s.io/${podId}: created`);
    assert.match(log, new RegExp(`task k8s.io/${podId}: created \\(pid \\d+, root served by strata\\)`));
    assert.match(
      log,
      new RegExp(`task k8s.io/${containerId}: created \\(pid \\d+, root served by strata\\)`),
    );
    assert.match(log, `imported ${CONTAINERD_IMAGES.busybox} from containerd's content store`);
    assert.match(log, `imported ${PAUSE_IMAGE} from containerd's content store`);
    const names = (await listImages(env.storeRoot)).flatMap((i) => i.names ?? []);
    assert.ok(names.includes(CONTAINERD_IMAGES.busybox), `strata holds the pod's image: ${names.join(' ')}`);

    const exec = await cri.execSync(containerId, [
      'sh',
      '-c',
      'grep " / " /proc/self/mountinfo; echo err >&2',
    ]);
    assert.is(exec.exitCode, 0);
    const root = rootLine(exec.stdout.toString());
    assert.match(root, /strata/, `the container's / is strata's, not containerd's snapshot: ${root}`);
    assert.not.match(root, /snapshots/);
    assert.is(exec.stderr.toString(), 'err\n');
    // The pod's namespaces are the pause container's: pid 1 here is catatonit, in pause mode.
    const pid1 = await cri.execSync(containerId, ['cat', '/proc/1/cmdline']);
    assert.is(pid1.stdout.toString(), '/catatonit\0-P\0', 'the app shares the sandbox pid namespace');
    const bad = await cri.execSync(containerId, ['sh', '-c', 'exit 7']);
    assert.is(bad.exitCode, 7);

    // The CRI log file: containerd's CRI copies the container's stdout fifo into it.
    const logFile = join(logs, 'app.log');
    assert.ok(
      await eventually(() => existsSync(logFile) && readFileSync(logFile, 'utf8').includes('hello-from-app')),
      'the container output reaches the CRI log file',
    );
    const cri0 = readFileSync(logFile, 'utf8').split('\n')[0];
    assert.match(cri0, /^\S+ stdout F hello-from-app$/, `CRI log format: ${cri0}`);
    assert.match(readFileSync(logFile, 'utf8'), /stdout F [^\n]* \/ \/ [^\n]*strata/);

    await cri.stopContainer(containerId, 2);
    const st = await cri.containerStatus(containerId);
    assert.is(st.state, 'CONTAINER_EXITED');
    assert.is(st.exitCode, 128 + 3, "the image's StopSignal (SIGQUIT) ended it");
  } finally {
    await removePod(cri, podId);
  }
  assert.equal(await cri.listPodSandbox(), []);
  assert.equal(await cri.listContainers(), []);
  await assertNothingLeft(K8S_NAMESPACE);
});

/** busybox plus one layer holding /marker (so it shares busybox's base layer), as an oci-archive. */
async function derivedImage(name: string, marker: string): Promise<string> {
  const base = await busyboxImage();
  const dir = join(c.dir, `img-${name}`);
  const layout = join(dir, 'oci');
  cpSync(base.ociLayout, layout, { recursive: true });
  const image = `${layout}:${base.tag}`;
  await execa('umoci', ['unpack', '--image', image, join(dir, 'work')]);
  writeFileSync(join(dir, 'work', 'rootfs', 'marker'), `${marker}\n`);
  await execa('umoci', ['repack', '--image', image, join(dir, 'work')]);
  const archive = join(dir, 'image.tar');
  await execa('skopeo', [
    '--insecure-policy',
    'copy',
    '--quiet',
    `oci:${image}`,
    `oci-archive:${archive}:latest`,
  ]);
  return archive;
}

test('ctr run: three concurrent Creates of an image strata lacks import it once, and run it', async () => {
  const name = 'localhost/strata-test/derived:latest';
  await c.importArchive(await derivedImage('derived', 'derived-marker'), name);
  const ids = ['imp1', 'imp2', 'imp3'];
  const runs = await Promise.all(
    ids.map((id) =>
      c.ctr(
        [
          'run',
          '--rm',
          '--runtime',
          RUNTIME,
          name,
          id,
          'sh',
          '-c',
          'cat /marker; grep " / " /proc/self/mountinfo',
        ],
        {
          timeoutMs: 120_000,
        },
      ),
    ),
  );
  for (const r of runs) {
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /^derived-marker\n/);
    assert.match(rootLine(r.stdout), /strata/, 'served by strata');
  }
  const imports = daemonLog()
    .split('\n')
    .filter((l) => l.includes(`imported ${name} from containerd`));
  assert.is(imports.length, 1, `one import for three Creates:\n${imports.join('\n')}`);
  await assertNothingLeft('default');
});

test("ctr run: a corrupt blob in containerd's store is refused; the task runs on containerd's snapshot", async () => {
  const name = 'localhost/strata-test/corrupt:latest';
  const archive = await derivedImage('corrupt', 'corrupt-marker');
  await c.importArchive(archive, name); // unpacked into containerd's snapshot here, before the damage
  // The layer only this image has: the newest blob of the layout's manifest.
  const index = JSON.parse(readFileSync(join(c.dir, 'img-corrupt', 'oci', 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  const manifestHex = index.manifests[0].digest.replace('sha256:', '');
  const manifest = JSON.parse(
    readFileSync(join(c.dir, 'img-corrupt', 'oci', 'blobs', 'sha256', manifestHex), 'utf8'),
  ) as { layers: { digest: string }[] };
  const top = manifest.layers[manifest.layers.length - 1].digest.replace('sha256:', '');
  const blob = join(c.root, 'io.containerd.content.v1.content', 'blobs', 'sha256', top);
  const bytes = readFileSync(blob);
  bytes[bytes.length >> 1] ^= 0xff;
  writeFileSync(blob, bytes);

  const r = await c.ctr(
    [
      'run',
      '--rm',
      '--runtime',
      RUNTIME,
      name,
      'bad1',
      'sh',
      '-c',
      'cat /marker; grep " / " /proc/self/mountinfo',
    ],
    { timeoutMs: 120_000 },
  );
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^corrupt-marker\n/);
  assert.match(rootLine(r.stdout), /snapshots/, "containerd's snapshot, not strata");
  assert.match(daemonLog(), /task default\/bad1: its image could not be served from strata: .*sha256/);
  const names = (await listImages(env.storeRoot)).flatMap((i) => i.names ?? []);
  assert.not.ok(names.includes(name), 'nothing half-imported is named');
  await assertNothingLeft('default');
});

test.run();
