// Containers outlive the daemon (issue 12), with real runc containers from `strata run -d`: every
// file every container reads while the daemon is killed with -9 (restarted by the fd holder), or
// replaced by `strata daemon --upgrade`, has the image's contents, no read fails, and afterwards
// nothing is left. The full loop (10 containers, 5 kills in 10 s) is scripts/outlive-soak.ts;
// here 2 containers keep CI time small.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { NATIVE_CONTRACT } from '../../src/contract/generated/native-contract.js';
import { listLeases } from '../../src/store/leases.js';
import { eventually, hostMounts, makeEnv, removeEnv, served, startDaemon } from './harness.js';
import {
  checkReaders,
  killDaemon,
  leftovers,
  morePasses,
  referenceDigests,
  startReaders,
  strataCli,
  stopDaemon,
  stopReaders,
  upgradeDaemon,
} from './outlive.js';

const READERS = 2;

test('kill -9 and --upgrade of the daemon under reading containers: every read succeeds and matches', async () => {
  const env = await makeEnv(['debian']);
  try {
    const reference = await referenceDigests(env);
    assert.ok(reference.size > 1000, `the image has files to read (${reference.size})`);
    const first = await startDaemon(env);
    const mountsBefore = hostMounts(env);
    let pid = first.pid;
    const readers = await startReaders(env, READERS);
    try {
      assert.ok(await morePasses(readers, 1, 120_000), 'every reader completed a pass');

      const killed = await killDaemon(env, pid);
      assert.is(await first.stop(), 'SIGKILL');
      pid = killed.pid;
      assert.ok(await morePasses(readers, 1, 120_000), 'every reader went on after kill -9');

      const upgraded = await upgradeDaemon(env, pid);
      pid = upgraded.pid;
      assert.ok(await morePasses(readers, 1, 120_000), 'every reader went on after --upgrade');
    } finally {
      assert.ok(await stopReaders(readers), 'the readers stopped');
    }
    const checked = checkReaders(readers, reference);
    assert.equal(checked.problems, [], 'no read failed and every content matched');
    assert.ok(checked.passes >= READERS * 3, `passes checked: ${checked.passes}`);
    assert.ok(await stopDaemon(env, pid), 'the last daemon and the fd holder left');
    assert.equal(await leftovers(env, mountsBefore), [], 'nothing is left');
  } catch (err) {
    process.stderr.write(
      `daemon log:\n${readFileSync(env.logFile, 'utf8').split('\n').slice(-40).join('\n')}\n`,
    );
    throw err;
  } finally {
    if (!process.env.STRATA_KEEP_TEST_DIR) removeEnv(env);
  }
});

test('a foreground strata run keeps its container when the daemon is killed under it', async () => {
  const env = await makeEnv(['busybox']);
  try {
    const first = await startDaemon(env);
    const mountsBefore = hostMounts(env);
    // The test image's entrypoint is sh -c.
    const run = strataCli(env, ['run', '--name', 'fg', 'busybox', 'sleep 2; ls /bin | wc -l']);
    assert.ok(
      await eventually(async () => (await served(env)).some((c) => c.state === 'attached'), 20_000),
      'the container runs',
    );
    const killed = await killDaemon(env, first.pid);
    await first.stop();
    const r = await run;
    assert.is(r.code, 0, r.stderr);
    assert.ok(Number(r.stdout.trim()) > 10, `it read its root after the kill: ${r.stdout}`);
    // The front ends do not reconnect yet: they report the runtime's code and say so.
    assert.match(r.stderr, NATIVE_CONTRACT.run.lostMessage);
    assert.ok(
      await eventually(async () => (await listLeases(env.storeRoot)).length === 0, 10_000),
      'the new daemon saw the container end and released its root',
    );
    assert.is((await strataCli(env, ['rm', 'fg'])).code, 0);
    assert.ok(await stopDaemon(env, killed.pid), 'the daemon and the fd holder left');
    assert.equal(await leftovers(env, mountsBefore), [], 'nothing is left');
  } finally {
    if (!process.env.STRATA_KEEP_TEST_DIR) removeEnv(env);
  }
});

test.run();
