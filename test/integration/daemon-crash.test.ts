// Fault: the daemon killed with -9 while containers run (real crun and runc, through `strata run
// -d` and the hooks). Alone, it is restarted by the fd holder and the new daemon takes the
// containers' roots and leases over (issue 12; outlive.test.ts reads through it). Killed with the
// fd holder, the roots are gone, and its leases must not pin the image forever: `strata rm -f` releases a
// container's lease even with no daemon running, the next daemon releases the rest as it starts,
// and then `strata rm` + `image rm` + `gc` free every object, fsck is clean, and nothing is left:
// no mount, no process, no socket.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { cliArgv } from '../../src/executables.js';
import { listLeases } from '../../src/store/leases.js';
import { daemonPid, processesUnder } from './outlive.js';
import {
  dirEntries,
  eventually,
  hostMounts,
  isAlive,
  makeEnv,
  removeEnv,
  runCollect,
  served,
  startDaemon,
  type Env,
  type RunResult,
} from './harness.js';

function countFiles(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true }))
    n += e.isDirectory() ? countFiles(join(dir, e.name)) : 1;
  return n;
}

test('kill -9 of the daemon while containers run: every lease and object is reclaimable', async () => {
  const env: Env = await makeEnv(['busybox', 'debian']);
  const runDir = join(env.dir, 'rundir');
  const strata = (args: string[]): Promise<RunResult> => {
    const [cmd, ...rest] = cliArgv(args);
    const cliEnv = {
      ...process.env,
      STRATA_ROOT: env.storeRoot,
      STRATA_SOCKET: env.socket,
      STRATA_RUN_DIR: runDir,
    };
    return runCollect(cmd, rest, { env: cliEnv });
  };
  const rmf = (name: string) => strata(['rm', '-f', name]);
  let daemon = await startDaemon(env);
  const mountsBefore = hostMounts(env);
  try {
    const objects = countFiles(join(env.storeRoot, 'objects'));
    assert.ok(objects > 100, `the images have objects (${objects})`);
    const ids: Record<string, string> = {};
    for (const [runtime, image, cmd] of [
      ['crun', 'busybox', ['exec sleep 1000']],
      ['runc', 'debian', ['sleep', '1000']],
    ] as const) {
      const r = await strata(['run', '-d', '--name', runtime, '--runtime', runtime, image, ...cmd]);
      assert.is(r.code, 0, r.stderr);
      ids[runtime] = r.stdout.trim();
    }
    const leases = await listLeases(env.storeRoot);
    assert.equal(leases.map((l) => l.id).sort(), Object.values(ids).sort(), 'one lease per container');
    assert.ok(
      leases.every((l) => l.holder?.pid === daemon.pid),
      'held by the daemon',
    );

    // kill -9 of the daemon alone: the fd holder starts a new one, which takes both roots over
    // (their leases with them) while the containers go on running.
    daemon.child.kill('SIGKILL');
    assert.is(await daemon.stop(), 'SIGKILL');
    let next = 0;
    assert.ok(
      await eventually(async () => {
        next = (await daemonPid(env)) ?? 0;
        return next !== 0 && next !== daemon.pid;
      }, 15_000),
      'the fd holder restarted the daemon',
    );
    assert.ok(
      await eventually(async () => {
        const now = await listLeases(env.storeRoot);
        return now.length === 2 && now.every((l) => l.holder?.pid === next);
      }, 10_000),
      'the new daemon holds both leases',
    );
    assert.equal(
      (await served(env)).map((c) => c.id).sort(),
      Object.values(ids).sort(),
      'it serves both roots',
    );

    // kill -9 of everything (the fd holder first, so that nothing restarts): the roots are gone,
    // and the leases must still be reclaimable.
    const holders = processesUnder(env.dir).filter((p) => p.includes('strata-fdholder'));
    assert.is(holders.length, 1, `one fd holder: ${holders.join('; ')}`);
    process.kill(Number(holders[0].split(':')[0]), 'SIGKILL');
    process.kill(next, 'SIGKILL');
    assert.ok(await eventually(() => !isAlive(next), 5000), 'the second daemon is gone');
    assert.is((await listLeases(env.storeRoot)).length, 2, 'the dead daemon released nothing');

    // No daemon runs: rm -f still releases the lease of the container it removes.
    const rmCrun = await rmf('crun');
    assert.is(rmCrun.code, 0, rmCrun.stderr);
    assert.equal(
      (await listLeases(env.storeRoot)).map((l) => l.id),
      [ids.runc],
      'rm -f released its container lease without a daemon',
    );

    // The next daemon releases what the dead one held, though its container still runs.
    daemon = await startDaemon(env);
    const logged = `released stale lease ${ids.runc} of container ${ids.runc}`;
    assert.ok(
      await eventually(() => readFileSync(env.logFile, 'utf8').includes(logged), 10_000),
      `the restarted daemon logs the release: ${readFileSync(env.logFile, 'utf8')}`,
    );
    assert.equal(await listLeases(env.storeRoot), [], 'the restarted daemon released the stale lease');
    assert.not.match(readFileSync(env.logFile, 'utf8'), `released stale lease ${ids.crun}`);

    const rmRunc = await rmf('runc');
    assert.is(rmRunc.code, 0, rmRunc.stderr);
    const imageRm = await strata(['image', 'rm', 'busybox', 'debian']);
    assert.is(imageRm.code, 0, imageRm.stderr);
    const gc = await strata(['gc', '--json']);
    assert.is(gc.code, 0, gc.stderr);
    const result = JSON.parse(gc.stdout) as { removed: { objects: number; indexes: number } };
    assert.is(result.removed.objects, objects, 'gc freed every object of the images');
    assert.is(result.removed.indexes, 2);
    for (const dir of ['objects', 'images', 'indexes', 'blobs', 'refs', 'leases'])
      assert.is(countFiles(join(env.storeRoot, dir)), 0, `${dir} is empty`);
    const fsck = await strata(['fsck']);
    assert.is(fsck.code, 0, fsck.stdout + fsck.stderr);
    assert.match(fsck.stdout, /0 leases: clean/);

    assert.equal(dirEntries(join(runDir, 'containers')), [], 'no container record');
    assert.equal(hostMounts(env), mountsBefore, 'nothing mounted in the host namespace');
    assert.is(await daemon.stop(), 0, 'the restarted daemon exits cleanly');
    assert.ok(
      await eventually(() => processesUnder(env.dir).length === 0, 5000),
      `processes left: ${processesUnder(env.dir).join('\n')}`,
    );
    assert.not.ok(dirEntries(join(env.dir, 'run')).includes('strata.sock'), 'no socket left');
  } finally {
    // After a failure: take down whatever is left (a passing run has nothing left here).
    if (isAlive(daemon.pid)) daemon.child.kill('SIGKILL');
    for (const p of processesUnder(env.dir))
      if (/strata-fdholder|daemon/.test(p)) process.kill(Number(p.split(':')[0]), 'SIGKILL');
    for (const name of ['crun', 'runc']) await strata(['rm', '-f', name]);
    removeEnv(env);
  }
});

test.run();
