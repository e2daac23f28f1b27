// The private containerd harness, proved with the stock runc shim: `ctr run --rm` prints the
// container's output and passes its exit code on, and close() finds nothing left behind.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { CONTAINERD_IMAGES, Containerd, PAUSE_IMAGE, K8S_NAMESPACE } from './containerd-harness.js';

let c: Containerd;

test.before(async () => {
  c = await Containerd.start();
  await c.importTestImages(['busybox']);
});

test.after(async () => {
  await c?.close();
});

test('the test images and the pause image are imported under their names', async () => {
  const defaults = await c.ctrOk(['images', 'ls', '-q']);
  assert.ok(defaults.split('\n').includes(CONTAINERD_IMAGES.busybox), defaults);
  const k8s = await c.ctrOk(['images', 'ls', '-q'], { namespace: K8S_NAMESPACE });
  assert.ok(k8s.split('\n').includes(PAUSE_IMAGE), k8s);
});

test('ctr run --rm with the runc shim prints the output and passes the exit code on', async () => {
  c.track('default', 'h1');
  const r = await c.ctr(['run', '--rm', CONTAINERD_IMAGES.busybox, 'h1', 'sh', '-c', 'echo hello; exit 3']);
  assert.is(r.stdout, 'hello\n', r.stderr);
  assert.is(r.code, 3);
  assert.equal(await c.containers(), [], 'the container is gone');
  assert.equal(c.leftovers().mounts, [], 'its rootfs is unmounted');
});

test('a detached task is seen by tasks(), and leaves nothing once killed and removed', async () => {
  c.track('default', 'h2');
  await c.ctrOk(['run', '-d', CONTAINERD_IMAGES.busybox, 'h2', 'sleep', '1000']);
  const tasks = await c.tasks();
  assert.is(tasks.length, 1);
  assert.is(tasks[0].id, 'h2');
  assert.ok(tasks[0].pid > 0);
  await c.ctrOk(['tasks', 'kill', '-s', 'SIGKILL', 'h2']);
  // `tasks delete` fails until the exit is collected.
  for (let i = 0; i < 100 && (await c.ctr(['tasks', 'delete', 'h2'])).code !== 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  await c.ctrOk(['containers', 'rm', 'h2']);
  assert.equal(await c.tasks(), []);
});

test('restart(): a task keeps running across a containerd restart and is found again', async () => {
  c.track('default', 'h3');
  await c.ctrOk(['run', '-d', CONTAINERD_IMAGES.busybox, 'h3', 'sleep', '1000']);
  const [before] = await c.tasks();
  const oldPid = c.pid;
  await c.restart();
  assert.is.not(c.pid, oldPid);
  const after = await c.tasks();
  assert.equal(after, [before], 'the same task, same pid');
  await c.ctrOk(['tasks', 'kill', '-s', 'SIGKILL', 'h3']);
  for (let i = 0; i < 100 && (await c.ctr(['tasks', 'delete', 'h3'])).code !== 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  await c.ctrOk(['containers', 'rm', 'h3']);
});

test('io.containerd.strata.v2 runs containerd-shim-strata-v2 from the shimPath directory', async () => {
  const bin = mkdtempSync(join(tmpdir(), 'fake-shim-'));
  const calls = join(bin, 'calls');
  // A stand-in shim that records how containerd calls it, then fails.
  writeFileSync(
    join(bin, 'containerd-shim-strata-v2'),
    `#!/bin/sh\necho "$* TTRPC_ADDRESS=$TTRPC_ADDRESS" >> ${calls}\necho 'fake shim: no' >&2\nexit 1\n`,
  );
  chmodSync(join(bin, 'containerd-shim-strata-v2'), 0o755);
  const s = await Containerd.start({ cri: false, shimPath: [bin] });
  try {
    await s.importTestImages(['busybox']);
    const r = await s.ctr([
      'run',
      '--rm',
      '--runtime',
      'io.containerd.strata.v2',
      CONTAINERD_IMAGES.busybox,
      'f1',
      'true',
    ]);
    assert.is.not(r.code, 0);
    const lines = readFileSync(calls, 'utf8').split('\n');
    const start = lines.find((l) => / start /.test(l) || l.includes(' start TTRPC'));
    assert.ok(start, lines.join('\n'));
    assert.match(start, `-namespace default -address ${s.address}`);
    assert.match(start, `-id f1`);
    assert.match(start, `TTRPC_ADDRESS=${s.ttrpcAddress}`);
    await s.ctr(['containers', 'rm', 'f1']);
  } finally {
    await s.close();
    rmSync(bin, { recursive: true, force: true });
  }
});

test.run();
