import { readFileSync, readlinkSync, statfsSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { CgroupNamespace } from '../../src/run/cgroup-ns.js';
import { CGROUP2_SUPER_MAGIC, findExecutable } from '../../src/run/runtime.js';
import { waitFor } from '../native/mini-fuse.js';

const unshare = findExecutable('unshare') as string;
const holderPid = (path: string): number => Number(/^\/proc\/(\d+)\/ns\/mnt$/.exec(path)?.[1]);
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('one namespace with cgroup2 on /sys/fs/cgroup, kept across calls, ours untouched', async () => {
  const before = readFileSync('/proc/self/mountinfo', 'utf8');
  const ns = new CgroupNamespace(unshare);
  try {
    const path = await ns.path();
    assert.is(await ns.path(), path, 'the same holder serves every call');
    assert.is.not(readlinkSync(path), readlinkSync('/proc/self/ns/mnt'), 'a namespace of its own');
    const pid = holderPid(path);
    // Its root is ours (a slave copy), so its /sys/fs/cgroup is reachable through /proc/PID/root.
    assert.is(statfsSync(`/proc/${pid}/root/sys/fs/cgroup`).type, CGROUP2_SUPER_MAGIC);
    assert.is(readFileSync('/proc/self/mountinfo', 'utf8'), before, 'nothing mounted here');
  } finally {
    await ns.stop();
  }
});

test('a holder that died is replaced on the next call; stop() ends it', async () => {
  const ns = new CgroupNamespace(unshare);
  const first = holderPid(await ns.path());
  process.kill(first, 'SIGKILL');
  assert.ok(await waitFor(() => !alive(first), 2000));
  const second = holderPid(await ns.path());
  assert.is.not(second, first);
  await ns.stop();
  assert.not.ok(alive(second), 'stop() resolves once the holder has left');
});

test('a holder that cannot start is a clear error', async () => {
  const ns = new CgroupNamespace('/nonexistent/unshare');
  try {
    await ns.path();
    assert.unreachable('should have failed');
  } catch (err) {
    assert.match((err as Error).message, 'cannot start /nonexistent/unshare');
  }
});

test.run();
