// containerd's stock runc shim driving strata-runtime: `ctr run --runc-binary strata-runtime`
// against a private containerd (its own root, state and sockets under a temp dir; CRI off). The
// shim calls strata-runtime exactly as it calls runc (--root, --log log.json --log-format json,
// create --bundle ... --pid-file ...); a bundle annotated with org.strata.image is served from
// strata's store, one without runs on containerd's own snapshot. Nothing is left afterwards.
// (A fuller containerd harness with CRI lives in the foreign helper's containerd-harness.ts; this
// test needs only ctr.)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { runtimeExecutable } from '../../src/executables.js';
import { busyboxImage } from '../fixtures/images.js';
import { unmountAll } from '../fixtures/mounts.js';
import {
  assertNoLeaks,
  closeDaemonEnv,
  eventually,
  openDaemonEnv,
  runCollect,
  type DaemonEnv,
  type RunResult,
} from './harness.js';

let d: DaemonEnv;
let dir: string;
let containerd: ChildProcess;
let wrapper: string;
const IMAGE = 'localhost/strata-rt/busybox:latest';

const ctr = (args: string[]): Promise<RunResult> => runCollect('ctr', ['-a', join(dir, 'c.sock'), ...args]);

test.before(async () => {
  d = await openDaemonEnv(['busybox']);
  // Short: the shim's socket paths must stay under 108 bytes.
  dir = mkdtempSync(join(tmpdir(), 'ctd-rt-'));
  writeFileSync(
    join(dir, 'config.toml'),
    [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'oom_score = 0',
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${dir}/c.sock"`,
      '[ttrpc]',
      `  address = "${dir}/c.sock.ttrpc"`,
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${dir}/opt"`,
      '',
    ].join('\n'),
  );
  wrapper = join(dir, 'strata-runtime');
  writeFileSync(
    wrapper,
    `#!/bin/sh\nexport STRATA_SOCKET=${d.env.socket}\nexec ${runtimeExecutable()} "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  containerd = spawn('containerd', ['--config', join(dir, 'config.toml')], { stdio: 'ignore' });
  assert.ok(
    await eventually(
      async () => existsSync(join(dir, 'c.sock')) && (await ctr(['version'])).code === 0,
      20_000,
    ),
    'containerd answers',
  );
  const img = await busyboxImage();
  const r = await ctr(['images', 'import', '--base-name', IMAGE.replace(/:latest$/, ''), img.ociArchive]);
  assert.is(r.code, 0, r.stderr);
});

test.after(async () => {
  try {
    const exited = new Promise((resolve) => containerd.once('exit', resolve));
    containerd.kill('SIGTERM');
    await exited;
    await unmountAll(dir);
    rmSync(dir, { recursive: true, force: true });
  } finally {
    await closeDaemonEnv(d);
  }
});

async function assertNothingLeft(): Promise<void> {
  assert.is((await ctr(['containers', 'ls', '-q'])).stdout, '', 'containerd keeps no container');
  // pgrep exits 1 when nothing matches: the answer wanted.
  const shims = spawnSync('pgrep', ['-f', `containerd-shim-runc-v2 .*-address ${dir}/`], {
    encoding: 'utf8',
  });
  assert.is(shims.stdout.trim(), '', 'no shim left');
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
  await assertNothingLeft();
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
  await assertNothingLeft();
});

test.run();
