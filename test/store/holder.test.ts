// The liveness rule of lease holders: a pid alone does not prove the holder lives (reuse, reboots,
// zombies); pid + start time + boot id does.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { bootId, currentHolder, holderAlive, procStat } from '../../src/store/holder.js';

function killAndWait(child: ChildProcess): Promise<unknown> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  return exited;
}

test('this process is alive as a holder; a different start time (pid reused) or boot id is not', () => {
  const me = currentHolder('test');
  assert.is(me.pid, process.pid);
  assert.match(me.startTime, /^[0-9]+$/);
  assert.ok(holderAlive(me));
  assert.not.ok(holderAlive({ ...me, startTime: String(Number(me.startTime) - 1) }), 'pid reused');
  assert.not.ok(holderAlive({ ...me, bootId: '00000000-0000-0000-0000-000000000000' }), 'earlier boot');
});

test('a process that ended is not alive; nor is a zombie', async () => {
  const r = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' });
  const pid = Number(r.stdout.trim());
  assert.is(procStat(pid), undefined);
  assert.not.ok(holderAlive({ pid, startTime: '1', bootId: bootId() }));

  // sh forks a short sleep and execs a long one, which never reaps it: it stays a zombie.
  const parent = spawn('sh', ['-c', 'sleep 0.1 & echo $!; exec sleep 30'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  try {
    const zombie = await new Promise<number>((resolve) =>
      parent.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
    );
    let stat = procStat(zombie);
    for (let i = 0; i < 100 && stat?.state !== 'Z'; i++) {
      await new Promise((r) => setTimeout(r, 10));
      stat = procStat(zombie);
    }
    assert.is(stat?.state, 'Z');
    assert.not.ok(holderAlive({ pid: zombie, startTime: stat!.startTime, bootId: bootId() }));
  } finally {
    await killAndWait(parent);
  }
});

test('a process whose name holds spaces and parentheses is read right', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-holder-'));
  const odd = join(dir, 'a) (b c');
  symlinkSync('/bin/sleep', odd);
  const child = spawn(odd, ['30'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 100));
    const stat = procStat(child.pid!);
    assert.ok(stat);
    assert.match(stat.startTime, /^[0-9]+$/);
    assert.ok(['S', 'R'].includes(stat.state), stat.state);
  } finally {
    await killAndWait(child);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
