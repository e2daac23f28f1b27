// systemd's file descriptor store (src/daemon/fd-store.ts): the daemon deposits every session's
// /dev/fuse fd (FDSTORE=1, FDNAME) and gets them back from the service manager that restarts it
// ($LISTEN_FDS, $LISTEN_FDNAMES), even when the fd holder died too. This machine's PID 1 is not
// systemd: test/fixtures/mini-systemd.py speaks the same notify-socket protocol (the narrow
// boundary), and runs the daemon as a Type=notify service with Restart=on-failure would.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { listLeases } from '../../src/store/leases.js';
import { daemonCliArgv, eventually, hostMounts, isAlive, makeEnv, removeEnv, served } from './harness.js';
import { daemonPid, leftovers, processesUnder, strataCli } from './outlive.js';

const standIn = new URL('../fixtures/mini-systemd.py', import.meta.url).pathname;

test('under a service manager with an fd store, a container outlives kill -9 of the daemon and the fd holder', async () => {
  const env = await makeEnv(['busybox']);
  const events = join(env.dir, 'events');
  const lines = (): string[] => (existsSync(events) ? readFileSync(events, 'utf8').split('\n') : []);
  const [cmd, ...args] = daemonCliArgv(env);
  const manager = spawn(
    'python3',
    [standIn, '--notify', join(env.dir, 'notify.sock'), '--events', events, '--', cmd, ...args],
    { stdio: 'ignore' },
  );
  try {
    const mountsBefore = hostMounts(env);
    assert.ok(
      await eventually(() => lines().some((l) => l.startsWith('ready ')), 30_000),
      'the daemon is ready',
    );
    const out = join(env.dir, 'out');
    mkdirSync(out, { mode: 0o777 });
    chmodSync(out, 0o777); // the container's user writes there
    const run = await strataCli(env, [
      'run',
      '-d',
      '--name',
      'kept',
      '-v',
      `${out}:/out`,
      'busybox',
      'ls /bin | wc -l > /out/b; mv /out/b /out/before; while [ ! -e /out/go ]; do sleep 0.05; done; ls /bin | wc -l > /out/a; mv /out/a /out/after',
    ]);
    assert.is(run.code, 0, run.stderr);
    assert.ok(await eventually(() => existsSync(join(out, 'before')), 20_000), 'the container runs');
    assert.ok(
      lines().some((l) => /^stored [0-9a-z-]+ 1$/.test(l)),
      `the session went to the fd store: ${lines().join('; ')}`,
    );
    // kill -9 of the fd holder, then of the daemon: only the service manager keeps the session.
    const holder = processesUnder(env.dir).find((p) => p.includes('strata-fdholder'));
    assert.ok(holder, 'the fd holder runs');
    process.kill(Number(holder.split(':')[0]), 'SIGKILL');
    const first = (await daemonPid(env))!;
    process.kill(first, 'SIGKILL');
    assert.ok(
      await eventually(async () => {
        const now = await daemonPid(env);
        return now !== undefined && now !== first;
      }, 30_000),
      'the service manager restarted the daemon',
    );
    assert.ok(
      lines().some((l) => / fds=1$/.test(l) && l.startsWith('start ')),
      'with the stored fd',
    );
    assert.equal(
      (await served(env)).map((c) => c.state),
      ['attached'],
      'the restarted daemon took the root over',
    );
    writeFileSync(join(out, 'go'), '');
    assert.ok(await eventually(() => existsSync(join(out, 'after')), 20_000), 'the container ended');
    assert.is(readFileSync(join(out, 'after'), 'utf8'), readFileSync(join(out, 'before'), 'utf8'));
    assert.ok(
      await eventually(async () => (await listLeases(env.storeRoot)).length === 0, 10_000),
      'its lease released',
    );
    assert.ok(
      await eventually(() => lines().some((l) => /^(removed|dropped) [0-9a-z-]+$/.test(l)), 10_000),
      'and its fd left the store',
    );
    assert.is((await strataCli(env, ['rm', 'kept'])).code, 0);

    // Reconciliation: a container that ends while no daemon runs (the service manager stopped
    // meanwhile, so nothing restarts it) is recorded by its monitor, and the daemon that comes
    // later finds its session ended (ENODEV), releases its lease and drops its fds.
    const out2 = join(env.dir, 'out2');
    mkdirSync(out2, { mode: 0o777 });
    chmodSync(out2, 0o777);
    const run2 = await strataCli(env, [
      'run',
      '-d',
      '--name',
      'ended',
      '-v',
      `${out2}:/out`,
      'busybox',
      'while [ ! -e /out/go ]; do sleep 0.05; done; exit 4',
    ]);
    assert.is(run2.code, 0, run2.stderr);
    const endedId = run2.stdout.trim();
    assert.ok(
      await eventually(async () => (await served(env)).some((c) => c.state === 'attached'), 20_000),
      'the second container runs',
    );
    const second = (await daemonPid(env))!;
    process.kill(manager.pid!, 'SIGSTOP');
    process.kill(second, 'SIGKILL');
    writeFileSync(join(out2, 'go'), '');
    const ps = async () =>
      (
        JSON.parse((await strataCli(env, ['ps', '-a', '--json'])).stdout) as {
          name: string;
          exitCode?: number;
        }[]
      ).map((c) => [c.name, c.exitCode]);
    assert.ok(
      await eventually(async () => JSON.stringify(await ps()) === JSON.stringify([['ended', 4]]), 20_000),
      'its exit was recorded while no daemon ran',
    );
    assert.is((await listLeases(env.storeRoot)).length, 1, 'its lease waits for the next daemon');
    process.kill(manager.pid!, 'SIGCONT');
    assert.ok(
      await eventually(async () => {
        const now = await daemonPid(env);
        return now !== undefined && now !== second;
      }, 30_000),
      'the service manager restarted the daemon',
    );
    assert.ok(
      await eventually(
        async () => (await served(env)).length === 0 && (await listLeases(env.storeRoot)).length === 0,
        10_000,
      ),
      'the session that ended meanwhile was dropped and its lease released',
    );
    assert.ok(
      await eventually(() =>
        readFileSync(env.logFile, 'utf8').includes(`container ${endedId}: released (FUSE session ended`),
      ),
      'the new daemon logged the release',
    );
    assert.is((await strataCli(env, ['rm', 'ended'])).code, 0);
    manager.kill('SIGTERM');
    assert.ok(await eventually(() => manager.exitCode !== null, 20_000), 'the service stopped');
    assert.ok(await eventually(() => processesUnder(env.dir).length === 0, 10_000), 'no process left');
    assert.equal(await leftovers(env, mountsBefore), [], 'nothing is left');
  } catch (err) {
    process.stderr.write(`error: ${String(err)}\nevents: ${lines().join('; ')}\n`);
    if (existsSync(env.logFile))
      process.stderr.write(
        `daemon log:\n${readFileSync(env.logFile, 'utf8').split('\n').slice(-30).join('\n')}\n`,
      );
    throw err;
  } finally {
    if (manager.pid && isAlive(manager.pid)) {
      manager.kill('SIGCONT');
      manager.kill('SIGKILL');
    }
    if (!process.env.STRATA_KEEP_TEST_DIR) removeEnv(env);
  }
});

test.run();
