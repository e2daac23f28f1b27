import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readlinkSync, readSync, writeSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { constants as c, native, type ChildExit } from '../../src/native-addon.js';
import { waitFor } from './mini-fuse.js';

// Children spawned through node:child_process are reaped by libuv itself, so these tests watch
// orphaned grandchildren, which the subreaper flag makes ours (as `strata run` will).

/** Starts `script` as an orphaned grandchild and returns its pid. */
function orphan(script: string): number {
  const r = spawnSync('sh', ['-c', `(${script}) >/dev/null 2>&1 </dev/null & echo $!`], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

async function waitExit(pidfd: number): Promise<ChildExit | null> {
  let exit: ChildExit | null = null;
  await waitFor(() => (exit = native.waitidPidfd(pidfd)) !== null, 5000);
  return exit;
}

test('prctlSetChildSubreaper: an orphaned grandchild is reparented to us', () => {
  native.prctlSetChildSubreaper(true);
  const pid = orphan('sleep 30');
  const ppid = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  assert.is(ppid, process.pid);
  process.kill(pid, 'SIGKILL');
  native.prctlSetChildSubreaper(false);
  const after = orphan('sleep 30');
  const ppid2 = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${after}/status`, 'utf8'))![1]);
  assert.is.not(ppid2, process.pid, 'off again');
  process.kill(after, 'SIGKILL');
  native.prctlSetChildSubreaper(true);
});

test('pidfdOpen + waitidPidfd: null while running, then the exit status', async () => {
  const pid = orphan('sleep 0.3; exit 7');
  const pidfd = native.pidfdOpen(pid);
  assert.is(native.waitidPidfd(pidfd), null);
  assert.equal(await waitExit(pidfd), { code: c.CLD_EXITED, status: 7, pid });
  assert.throws(
    () => native.waitidPidfd(pidfd),
    (e: NodeJS.ErrnoException) => e.code === 'ECHILD',
    'reaped',
  );
  closeSync(pidfd);
});

test('waitidPidfd reports a signal death; pidfdOpen of no process is ESRCH', async () => {
  const pid = orphan('sleep 30');
  const pidfd = native.pidfdOpen(pid);
  process.kill(pid, 'SIGKILL');
  assert.equal(await waitExit(pidfd), { code: c.CLD_KILLED, status: 9, pid });
  closeSync(pidfd);
  assert.throws(
    () => native.pidfdOpen(pid),
    (e: NodeJS.ErrnoException) => e.code === 'ESRCH',
  );
});

test('mallopt accepts the server tuning and refuses an out-of-range value; mallocTrim runs', () => {
  assert.is(native.mallopt(native.constants.M_ARENA_MAX, 2), true);
  assert.is(native.mallopt(native.constants.M_MMAP_THRESHOLD, 128 * 1024), true);
  // glibc refuses a fastbin limit above its maximum (M_MXFAST is 1 in <malloc.h>).
  assert.is(native.mallopt(1, 1 << 20), false);
  assert.type(native.mallocTrim(), 'boolean');
  assert.throws(() => (native.mallopt as (p: unknown, v: unknown) => boolean)('x', 1), /param/);
});

test("discardPages gives a buffer's whole pages back to the kernel; the memory stays usable", () => {
  const anonKiB = () =>
    Number(/^Anonymous:\s+(\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))![1]);
  const buf = Buffer.allocUnsafeSlow(8 << 20);
  buf.fill(1);
  const before = anonKiB();
  const discarded = native.discardPages(buf);
  // Only whole pages inside the buffer: at most one page short at each end.
  assert.ok(discarded >= (8 << 20) - 8192 && discarded <= 8 << 20, String(discarded));
  assert.ok(before - anonKiB() >= 7 * 1024, `anonymous memory fell by ${before - anonKiB()} KiB`);
  assert.is(buf[4 << 20], 0); // discarded pages read as zeros
  buf.fill(2);
  assert.is(buf[(8 << 20) - 1], 2);
  assert.is(native.discardPages(buf.buffer), discarded); // an ArrayBuffer works too
  assert.is(native.discardPages(Buffer.alloc(10)), 0); // no whole page inside
  assert.throws(() => (native.discardPages as (b: unknown) => number)('x'), /Buffer or an ArrayBuffer/);
});

test('pipe: a real pipe, both ends close-on-exec', () => {
  const [r, w] = native.pipe();
  assert.ok(
    readFileSync(`/proc/self/fdinfo/${r}`, 'utf8').match(/flags:\s+0?2?0{4,}/),
    'read end is O_RDONLY|O_CLOEXEC',
  );
  assert.match(readlinkSync(`/proc/self/fd/${w}`), /^pipe:/);
  writeSync(w, 'hi');
  const buf = Buffer.alloc(2);
  readSync(r, buf);
  assert.is(buf.toString(), 'hi');
  closeSync(r);
  closeSync(w);
});

test('spawnFast: argv, env, fds (and /dev/null), default signals; exit through a pidfd; errors', async () => {
  const [r, w] = native.pipe();
  const pid = native.spawnFast(
    'sh',
    ['sh', '-c', 'echo "$0 $X"; read l || echo stdin-eof; grep SigIgn /proc/self/status; exit 3'],
    ['X=from-env'],
    [-1, w, w],
  );
  closeSync(w);
  const pidfd = native.pidfdOpen(pid);
  const exit = await waitExit(pidfd);
  closeSync(pidfd);
  assert.equal(exit, { code: c.CLD_EXITED, status: 3, pid });
  const buf = Buffer.alloc(4096);
  const text = buf.subarray(0, readSync(r, buf)).toString('utf8');
  closeSync(r);
  assert.match(text, /^sh from-env\nstdin-eof\n/);
  // No signal ignored: Node ignores SIGPIPE, glibc's posix_spawn its internal 32 and 33; the child
  // (runc, and through it the container) must not.
  assert.match(text, /SigIgn:\s+0+\n/);
  assert.throws(
    () => native.spawnFast('/nonexistent/bin', ['x'], [], []),
    (e: NodeJS.ErrnoException) => e.code === 'ENOENT',
  );
  assert.throws(() => native.spawnFast('sh', ['sh', 7 as unknown as string], [], []), TypeError);
});

test('setWinsize: works on a pty master; a pipe is ENOTTY, a bad fd EBADF', () => {
  const [pr, pw] = native.pipe();
  assert.throws(
    () => native.setWinsize(pr, 24, 80),
    (e: NodeJS.ErrnoException) => e.code === 'ENOTTY',
  );
  closeSync(pr);
  closeSync(pw);
  const master = openSync('/dev/ptmx', 'r+');
  native.setWinsize(master, 33, 101);
  closeSync(master);
  assert.throws(
    () => native.setWinsize(-1, 1, 1),
    (e: NodeJS.ErrnoException) => e.code === 'EBADF',
  );
});

test.run();
