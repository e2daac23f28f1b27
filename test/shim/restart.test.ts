// Restarts with strata-shimmed tasks running, against a real containerd:
// - containerd restarted: it reloads the task from the bundle's `address` file (the daemon's
//   socket) and reconnects; the task keeps running (same pid), exec, kill, the exit status and
//   delete all still work, and the exit reaches containerd's new event service.
// - the strata daemon killed (-9): containerd 1.6 takes a dropped shim connection as a dead shim
//   and runs the shim's `delete` (runtime/v2/shim.go cleanupAfterDeadShim). The shim binary starts
//   a daemon again, which ends the orphaned container (runc delete --force) and unmounts its root:
//   containerd then lists the task as gone with exit status 137, nothing of it is left running, and
//   new tasks run on the new daemon.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { eventually, isAlive, type Env } from '../integration/harness.js';
import {
  assertRootsReleased,
  closeShimTests,
  daemonPid,
  IMAGE,
  openShimTests,
  RUNTIME,
  type Containerd,
} from './containerd.js';

let env: Env;
let ctd: Containerd;
let mountsBefore: string[];

test.before(async () => {
  ({ env, ctd, mountsBefore } = await openShimTests({ containerdImport: true }));
});

test.after(() => closeShimTests(env, async () => ctd?.stop()));

/** `ctr task ls` as {id: [pid, status]}. */
async function taskList(): Promise<Record<string, [number, string]>> {
  const out: Record<string, [number, string]> = {};
  for (const line of (await ctd.ctr(['task', 'ls'])).stdout.split('\n').slice(1)) {
    const [id, pid, status] = line.trim().split(/\s+/);
    if (id) out[id] = [Number(pid), status];
  }
  return out;
}

async function assertNothingLeft(): Promise<void> {
  await assertRootsReleased(env, mountsBefore);
  assert.equal(await taskList(), {}, 'containerd lists no task');
  assert.is((await ctd.ctr(['containers', 'ls', '-q'])).stdout.trim(), '', 'no container record');
}

/** Whatever a failed test left: its tasks killed and deleted, its container records removed. */
async function removeAll(ids: string[]): Promise<void> {
  for (const id of ids) {
    await ctd.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
    await ctd.ctr(['task', 'delete', '--force', id]);
    await ctd.ctr(['container', 'delete', id]);
  }
}

const ok = async (args: string[]): Promise<string> => {
  const r = await ctd.ctr(args);
  assert.is(r.exitCode, 0, `ctr ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

test('containerd restarted: the task keeps running, exec/kill/delete work, the exit is seen', async () => {
  try {
    await containerdRestart();
  } catch (err) {
    await removeAll(['keep1']);
    throw err;
  }
});

async function containerdRestart(): Promise<void> {
  await ok(['run', '-d', '--runtime', RUNTIME, IMAGE, 'keep1', 'sleep', '1000']);
  const [pid, status] = (await taskList()).keep1;
  assert.is(status, 'RUNNING');
  assert.match(
    readFileSync(env.logFile, 'utf8'),
    /task default\/keep1: created \(pid \d+, root served by strata\)/,
    "imported from containerd's store, served by strata",
  );
  await ctd.harness.restart();
  assert.ok(isAlive(pid), 'the container lives through the restart');
  assert.equal(
    (await taskList()).keep1,
    [pid, 'RUNNING'],
    'containerd reloaded the task from its address file',
  );
  const exec = await ctd.ctr([
    'task',
    'exec',
    '--exec-id',
    'e1',
    'keep1',
    'sh',
    '-c',
    'echo in-exec; exit 5',
  ]);
  assert.is(exec.stdout, 'in-exec\n', exec.stderr);
  assert.is(exec.exitCode, 5);
  // containerd's event stream: the TaskExit must reach the new containerd's Events service.
  const events = spawn('ctr', ['-a', ctd.address, 'events'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let seen = '';
  events.stdout.on('data', (d: Buffer) => (seen += d.toString()));
  await new Promise((r) => setTimeout(r, 300));
  await ok(['task', 'kill', '-s', 'SIGKILL', 'keep1']);
  assert.ok(
    await eventually(async () => (await taskList()).keep1?.[1] === 'STOPPED', 10_000),
    'the kill is seen as STOPPED',
  );
  assert.ok(!isAlive(pid));
  const exitSeen = await eventually(() => /\/tasks\/exit .*keep1/.test(seen), 10_000);
  events.kill('SIGTERM');
  assert.ok(exitSeen, `containerd got the TaskExit event: ${seen}`);
  const del = await ctd.ctr(['task', 'delete', 'keep1']);
  assert.is(del.exitCode, 0, del.stderr);
  assert.match(del.stderr, /exit with non-zero exit code 137/, 'delete reports the real exit status');
  await ok(['container', 'delete', 'keep1']);
  await assertNothingLeft();
}

test('strata daemon killed (-9): containerd sees the task end (137), nothing is left, new tasks run', async () => {
  try {
    await daemonKilled();
  } catch (err) {
    await removeAll(['kill1', 'after1']);
    throw err;
  }
});

async function daemonKilled(): Promise<void> {
  await ok([
    'run',
    '-d',
    '--runtime',
    RUNTIME,
    '--annotation',
    'org.strata.image=busybox',
    IMAGE,
    'kill1',
    'sleep',
    '1000',
  ]);
  const [pid] = (await taskList()).kill1;
  const old = await daemonPid(env);
  assert.ok(old, 'the shim started a daemon');
  process.kill(old, 'SIGKILL');
  // containerd runs the shim's delete (which starts a daemon again); the container goes with it.
  assert.ok(
    await eventually(async () => (await taskList()).kill1 === undefined, 20_000),
    `containerd drops the task: ${JSON.stringify(await taskList())}`,
  );
  assert.ok(await eventually(() => !isAlive(pid), 5000), 'the orphaned container was ended');
  const fresh = await daemonPid(env);
  assert.ok(fresh && fresh !== old, 'a new daemon serves');
  const log = readFileSync(join(ctd.dir, 'containerd.log'), 'utf8');
  assert.match(log, /cleaning up after shim disconnected/);
  await ok(['container', 'delete', 'kill1']);
  assert.ok(existsSync(env.logFile));
  const r = await ctd.ctr(['run', '--rm', '--runtime', RUNTIME, IMAGE, 'after1', 'sh', '-c', 'echo again']);
  assert.is(r.stdout.trim(), 'again', r.stderr);
  await assertNothingLeft();
}

test.run();
