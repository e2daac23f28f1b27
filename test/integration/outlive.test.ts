// Containers outlive the daemon (issue 12), with real runc containers from `strata run -d`: every
// file every container reads while the daemon is killed with -9 (restarted by the fd holder), or
// replaced by `strata daemon --upgrade`, has the image's contents, no read fails, and afterwards
// nothing is left. The full loop (10 containers, 5 kills in 10 s) is scripts/outlive-soak.ts;
// here 2 containers keep CI time small.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { NATIVE_CONTRACT } from '../../src/contract/generated/native-contract.js';
import { listLeases } from '../../src/store/leases.js';
import { frontExecutable, hookExecutable } from '../../src/executables.js';
import { bundle, eventually, runCollect, served, type Env, type RunResult } from './harness.js';
import {
  assertDaemonLeftNothing,
  checkReaders,
  cliEnv,
  killFirstDaemon,
  morePasses,
  referenceDigests,
  startReaders,
  strataCli,
  stopReaders,
  upgradeDaemon,
  withOutliveDaemon,
} from './outlive.js';

const READERS = 2;

test('kill -9 and --upgrade of the daemon under reading containers: every read succeeds and matches', () =>
  withOutliveDaemon(['debian'], async (run) => {
    const { env } = run;
    const reference = await referenceDigests(env);
    assert.ok(reference.size > 1000, `the image has files to read (${reference.size})`);
    let pid: number;
    const readers = await startReaders(env, READERS);
    try {
      assert.ok(await morePasses(readers, 1, 120_000), 'every reader completed a pass');

      const killed = await killFirstDaemon(run);
      assert.is(killed.firstEnd, 'SIGKILL');
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
    await assertDaemonLeftNothing(run, pid);
  }));

/** `strata run` in the foreground through the native front end (or the Node CLI). */
function frontRun(env: Env, args: string[], native: boolean): Promise<RunResult> {
  if (!native) return strataCli(env, args);
  return runCollect(frontExecutable(), args, { env: cliEnv(env) });
}

test('foreground strata runs (native front end and Node CLI) keep their containers across kill -9 and --upgrade', () =>
  withOutliveDaemon(['busybox'], async (run) => {
    const { env } = run;
    // The test image's entrypoint is sh -c; each reads its root before and after both restarts.
    const script = (code: number) =>
      `ls /bin | wc -l; while [ ! -e /out/go ]; do sleep 0.05; done; ls /bin | wc -l; exit ${code}`;
    const outs = ['fg-native', 'fg-node', 'bg-hooks'].map((n) => join(env.dir, n));
    for (const o of outs) mkdirSync(o);
    const runs = [
      frontRun(env, ['run', '--name', 'fg-native', '-v', `${outs[0]}:/out`, 'busybox', script(7)], true),
      frontRun(env, ['run', '--name', 'fg-node', '-v', `${outs[1]}:/out`, 'busybox', script(0)], false),
    ];
    // The hooks path: -d runs the bundle with strata-hook (createRuntime, createContainer,
    // poststop), and its monitor records the exit code.
    const bg = await strataCli(env, [
      'run',
      '-d',
      '--name',
      'bg-hooks',
      '-v',
      `${outs[2]}:/out`,
      'busybox',
      script(3),
    ]);
    assert.is(bg.code, 0, bg.stderr);
    const bgId = bg.stdout.trim();
    assert.ok(
      await eventually(
        async () => (await served(env)).filter((c) => c.state === 'attached').length === 3,
        30_000,
      ),
      'the three containers run',
    );
    const killed = await killFirstDaemon(run);
    const upgraded = await upgradeDaemon(env, killed.pid);
    for (const o of outs) writeFileSync(join(o, 'go'), '');
    const [native, node] = await Promise.all(runs);
    for (const [r, code] of [
      [native, 7],
      [node, 0],
    ] as const) {
      assert.is(r.code, code, r.stderr);
      assert.not.match(r.stderr, NATIVE_CONTRACT.run.lostMessage);
      const counts = r.stdout.trim().split('\n').map(Number);
      assert.ok(
        counts.length === 2 && counts[0] > 10 && counts[1] === counts[0],
        `it read its root: ${r.stdout}`,
      );
    }
    // The daemon that came last finished both foreground records (exit code, no owner); the
    // monitor recorded the hooks container's.
    const exited = async () => {
      const ps = await strataCli(env, ['ps', '-a', '--json']);
      const infos = JSON.parse(ps.stdout) as { name: string; exitCode?: number; ownerPid?: number }[];
      return infos.map((i) => [i.name, i.exitCode, i.ownerPid]).sort();
    };
    const want = [
      ['bg-hooks', 3, undefined],
      ['fg-native', 7, undefined],
      ['fg-node', 0, undefined],
    ];
    await eventually(async () => JSON.stringify(await exited()) === JSON.stringify(want), 20_000);
    assert.equal(await exited(), want);
    assert.ok(
      await eventually(async () => (await listLeases(env.storeRoot)).length === 0, 10_000),
      'the new daemon saw the containers end and released their roots',
    );
    const log = readFileSync(env.logFile, 'utf8');
    assert.match(log, /its front end \(pid [0-9]+\) reconnected/);
    // The last daemon took the hooks container's root over and released it when it ended (its
    // ENODEV or its poststop, whichever came first); no hook failed.
    const last = log.slice(log.lastIndexOf(`(pid ${upgraded.pid})`));
    assert.match(last, `container ${bgId}: released (`);
    assert.not.match(log, 'hook poststop failed');
    for (const n of ['fg-native', 'fg-node', 'bg-hooks'])
      assert.is((await strataCli(env, ['rm', n])).code, 0);
    await assertDaemonLeftNothing(run, upgraded.pid);
  }));

test('roots still prepared (createContainer not come yet) survive kill -9 and --upgrade; the container still gets them', () =>
  withOutliveDaemon(['busybox'], async (run) => {
    const { env } = run;
    const victims: ChildProcess[] = [];
    try {
      const hookEnv = { ...process.env, STRATA_SOCKET: env.socket };
      const prepare = async (id: string) => {
        const dir = await bundle(env, 'busybox', { entrypoint: ['/bin/true'], command: [], user: '0' });
        const init = spawn('sleep', ['60'], { stdio: 'ignore' });
        victims.push(init);
        const state = JSON.stringify({
          ociVersion: '1.0.2',
          id,
          status: 'creating',
          pid: init.pid,
          bundle: dir,
        });
        const r = await runCollect(hookExecutable(), ['createRuntime'], { env: hookEnv, input: state });
        assert.is(r.code, 0, r.stderr);
        return { dir, state };
      };
      // What the runtime does next: createContainer attaches the root in the container's mount
      // namespace (here a private one, with the rootfs bind-mounted on itself as runc does), then
      // the container reads it.
      const attachAndRead = (c: { dir: string; state: string }) =>
        runCollect(
          'unshare',
          [
            '-m',
            '--propagation',
            'private',
            'sh',
            '-c',
            `mount --bind ${c.dir}/rootfs ${c.dir}/rootfs && "$0" createContainer && ls ${c.dir}/rootfs/bin | wc -l`,
            hookExecutable(),
          ],
          { env: hookEnv, input: c.state },
        );
      const a = await prepare('early-a');
      const killed = await killFirstDaemon(run);
      const b = await prepare('early-b');
      assert.equal(
        (await served(env)).map((c) => [c.id, c.state]).sort(),
        [
          ['early-a', 'prepared'],
          ['early-b', 'prepared'],
        ],
        'the new daemon took the prepared root over as prepared',
      );
      const upgraded = await upgradeDaemon(env, killed.pid);
      assert.equal(
        (await served(env)).map((c) => [c.id, c.state]).sort(),
        [
          ['early-a', 'prepared'],
          ['early-b', 'prepared'],
        ],
        'and --upgrade hands prepared roots over as they are',
      );
      for (const c of [a, b]) {
        const r = await attachAndRead(c);
        assert.is(r.code, 0, r.stderr);
        assert.ok(Number(r.stdout.trim()) > 10, `the container read its root: ${r.stdout}`);
      }
      // Their mount namespaces are gone: the roots end, nothing of them is held any more.
      assert.ok(
        await eventually(
          async () => (await served(env)).length === 0 && (await listLeases(env.storeRoot)).length === 0,
          10_000,
        ),
        'both roots released',
      );
      for (const v of victims) v.kill('SIGKILL');
      await assertDaemonLeftNothing(run, upgraded.pid);
    } finally {
      for (const v of victims) if (v.exitCode === null) v.kill('SIGKILL');
    }
  }));

test.run();
