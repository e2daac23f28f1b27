import { spawn } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { liveStartTime } from '../../src/store/holder.js';
import { watchPid } from '../../src/daemon/pid-watch.js';

// The watch's timer is unref'd (the daemon's server keeps it alive); keep this process alive.
const keepAlive = setInterval(() => undefined, 1000);
test.after(() => clearInterval(keepAlive));

test('reports the exit of a process that is not ours to wait for', async () => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  const pid = child.pid as number;
  assert.ok(liveStartTime(pid), 'a running process has a start time');
  const started = Date.now();
  const exited = new Promise<number>((resolve) => watchPid(pid, () => resolve(Date.now() - started), 20));
  await new Promise((r) => setTimeout(r, 100));
  child.kill('SIGKILL');
  const ms = await exited;
  assert.ok(ms >= 100 && ms < 2000, `noticed after ${ms} ms`);
  assert.is(liveStartTime(pid), undefined);
});

test('a pid that is already gone is reported at once; stop() silences the watch', async () => {
  let calls = 0;
  watchPid(2 ** 22 + 7, () => calls++); // above pid_max: never a process
  await new Promise((r) => setTimeout(r, 10));
  assert.is(calls, 1);
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  const w = watchPid(child.pid as number, () => calls++, 10);
  w.stop();
  child.kill('SIGKILL');
  await new Promise((r) => setTimeout(r, 100));
  assert.is(calls, 1);
});

test.run();
