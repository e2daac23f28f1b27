// Issue 7 item 1: nothing an image carries becomes an annotation. An image whose labels name
// crun's run.oci.hooks.stdout (crun opens that host path as root for the hooks' stdout), strata's
// own org.strata.image, crun's run.oci.seccomp_bpf_data and other runtimes' keys is built here,
// bundled and run with real crun and runc: no host file appears and config.json carries none of
// the labels (its run.oci.seccomp_bpf_data is strata's own precompiled filter). The same annotation given
// explicitly by the user does reach crun, which shows the probe can see the attack.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import type { RuntimeConfig } from '../../src/schema/generated/runtime-config.js';
import { SECCOMP_BPF_ANNOTATION } from '../../src/spec/annotations.js';
import type { LinuxSeccomp } from '../../src/spec/seccomp.js';
import { precompileSeccomp } from '../../src/spec/seccomp-bpf.js';
import { importImage } from '../../src/store/import.js';
import { openStore } from '../../src/store/store.js';
import { busyboxImage } from '../fixtures/images.js';
import {
  assertNoLeaks,
  bundle,
  closeDaemonEnv,
  openDaemonEnv,
  runContainer,
  type DaemonEnv,
  type Runtime,
} from '../integration/harness.js';

let d: DaemonEnv;
let hostFile: string;

test.before(async () => {
  d = await openDaemonEnv(['busybox']);
  hostFile = join(d.env.dir, 'created-by-image-label');
  const base = await busyboxImage();
  const layout = join(d.env.dir, 'hostile-oci');
  cpSync(base.ociLayout, layout, { recursive: true });
  const labels = {
    'run.oci.hooks.stdout': hostFile,
    'run.oci.hooks.stderr': `${hostFile}.err`,
    'org.strata.image': 'busybox',
    'io.kubernetes.cri.container-type': 'sandbox',
    'io.containerd.runc.v2.group': 'evil',
    'org.opencontainers.image.stopSignal': 'usr1',
    // crun's precompiled filter: one zero instruction, which crun would load as the filter.
    [SECCOMP_BPF_ANNOTATION]: 'AAAAAAAAAAA=',
  };
  execFileSync('umoci', [
    'config',
    '--image',
    `${layout}:${base.tag}`,
    '--tag',
    'hostile',
    ...Object.entries(labels).flatMap(([k, v]) => ['--config.label', `${k}=${v}`]),
  ]);
  await importImage(await openStore(d.env.storeRoot), `oci:${layout}:hostile`, { name: 'hostile' });
});

test.after(() => closeDaemonEnv(d));

let n = 0;
async function runHostile(runtime: Runtime, annotations?: Record<string, string>) {
  const dir = await bundle(d.env, 'hostile', {
    entrypoint: ['/bin/sh'],
    command: ['-c', 'echo ran'],
    ...(annotations ? { annotations } : {}),
  });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as RuntimeConfig;
  const r = await runContainer(runtime, dir, `labels-${runtime}-${++n}`);
  await assertNoLeaks(d.env, d.mountsBefore);
  return { config, r };
}

for (const runtime of ['crun', 'runc'] as const) {
  test(`${runtime}: image labels reach neither config.json nor the runtime`, async () => {
    const { config, r } = await runHostile(runtime);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, 'ran');
    const { [SECCOMP_BPF_ANNOTATION]: bpf, ...annotations } = config.annotations ?? {};
    assert.equal(Object.keys(annotations).sort(), [
      'org.opencontainers.image.stopSignal',
      'org.strata.image',
    ]);
    // strata's own precompiled filter (src/spec/seccomp-bpf.ts), not the label's.
    assert.ok(bpf === precompileSeccomp(config.linux?.seccomp as LinuxSeccomp), 'strata’s own filter');
    // The busybox image's StopSignal (SIGQUIT) wins over the label (unit-tested in runtime-config).
    assert.is(annotations['org.opencontainers.image.stopSignal'], 'SIGQUIT');
    assert.match(annotations['org.strata.image'], /^sha256:[0-9a-f]{64}$/, 'strata’s own, not the label');
    assert.not.ok(existsSync(hostFile), 'no host file created from an image label');
    assert.not.ok(existsSync(`${hostFile}.err`));
  });
}

test('crun: the same annotation given by the user does act (the probe can fail)', async () => {
  const userFile = join(d.env.dir, 'created-by-user-annotation');
  const { config, r } = await runHostile('crun', { 'run.oci.hooks.stdout': userFile });
  assert.is(r.code, 0, r.stderr);
  assert.is(config.annotations?.['run.oci.hooks.stdout'], userFile);
  assert.ok(existsSync(userFile), 'crun honours run.oci.hooks.stdout when the user asks for it');
  assert.not.ok(existsSync(hostFile));
});

test.run();
