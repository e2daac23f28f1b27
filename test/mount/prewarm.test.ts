// The lookups made ahead of a container (src/mount/prewarm.ts): which paths, one component at a
// time, never through a symlink, and nothing after stop().
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { PREWARM_MAX_LOOKUPS, prewarm, prewarmPaths } from '../../src/mount/prewarm.js';

const scratch = mkdtempSync(join(tmpdir(), 'strata-prewarm-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

test('paths: the mount points and the command (searched in PATH when it has no slash)', () => {
  const mounts = [{ destination: '/proc' }, { destination: '/etc/hosts' }, { destination: '/dev/../x/./y' }];
  assert.equal(prewarmPaths(mounts, ['/bin/sh', '-c', 'true'], []), ['proc', 'etc/hosts', 'x/y', 'bin/sh']);
  assert.equal(prewarmPaths([], ['sh'], ['A=1', 'PATH=/usr/bin:relative:/bin']), ['usr/bin/sh', 'bin/sh']);
  assert.equal(prewarmPaths(undefined, ['sh'], undefined), ['usr/local/bin/sh', 'usr/bin/sh', 'bin/sh']);
  assert.equal(prewarmPaths([{ destination: '/' }], undefined, undefined), []);
});

/** A tree where `etc` and `bin` are symlinks out of it, and the fd of its root. */
function tree(): { root: string; fd: number } {
  const root = mkdtempSync(join(scratch, 'root-'));
  mkdirSync(join(root, 'proc'));
  mkdirSync(join(root, 'usr', 'bin'), { recursive: true });
  writeFileSync(join(root, 'usr', 'bin', 'sh'), '');
  symlinkSync('/etc', join(root, 'etc')); // absolute: the host's /etc if followed
  symlinkSync('usr/bin', join(root, 'bin'));
  return { root, fd: openSync(root, 'r') };
}

test('walk: each component with lstat, never past a symlink or a file', async () => {
  const { fd } = tree();
  const asked: string[] = [];
  const base = `/proc/self/fd/${fd}/`;
  try {
    await new Promise<void>((resolve) => {
      const w = prewarm(fd, ['proc', 'etc/hosts', 'bin/sh', 'usr/bin/sh/x', 'missing/a'], (p) => {
        asked.push(p.slice(base.length));
        return lstat(p);
      });
      setTimeout(() => void w.stop().then(resolve), 200);
    });
  } finally {
    closeSync(fd);
  }
  assert.equal(asked.sort(), ['bin', 'etc', 'missing', 'proc', 'usr', 'usr/bin', 'usr/bin/sh']);
});

test('stop: no lookup starts after it, and it waits for the one in flight', async () => {
  let inFlight = 0;
  let started = 0;
  let release: () => void = () => undefined;
  const w = prewarm(3, ['a/b/c'], () => {
    started++;
    inFlight++;
    return new Promise((resolve) => {
      release = () => {
        inFlight--;
        resolve({ isDirectory: () => true });
      };
    });
  });
  await new Promise((r) => setImmediate(r)); // it begins after the caller's turn
  assert.is(started, 1, 'one lookup in flight');
  let stopped = false;
  const done = w.stop().then(() => (stopped = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.is(stopped, false, 'waits for the lookup in flight');
  release();
  await done;
  assert.is(inFlight, 0);
  assert.is(started, 1, 'nothing after stop');
});

test('stopped before it began (createContainer right after createRuntime): no lookup at all', async () => {
  let n = 0;
  const w = prewarm(3, ['a', 'b'], () => {
    n++;
    return Promise.resolve({ isDirectory: () => true });
  });
  await w.stop();
  assert.is(n, 0);
});

test('bounded: at most PREWARM_MAX_LOOKUPS lookups', async () => {
  let n = 0;
  const paths = Array.from({ length: 200 }, (_, i) => `d${i}`);
  await new Promise<void>((resolve) => {
    const w = prewarm(3, paths, () => {
      n++;
      return Promise.resolve({ isDirectory: () => false });
    });
    setTimeout(() => void w.stop().then(resolve), 50);
  });
  assert.is(n, PREWARM_MAX_LOOKUPS);
});

test.run();
