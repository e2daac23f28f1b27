// `strata run`, `ps`, `stop`, `rm` end to end: the real CLI, real crun and runc, a real daemon on
// a temp socket serving a temp store with the busybox image (Entrypoint ["/bin/sh", "-c"], so the
// command is one shell script; StopSignal SIGQUIT).
import { spawn, spawnSync } from 'node:child_process';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { cliArgv } from '../../src/executables.js';
import {
  assertRunsLeftNothing,
  closeDaemonEnv,
  openDaemonEnv,
  runCollect,
  servesNothing,
  withDaemonEnv,
  type DaemonEnv,
  type Env,
  type RunResult,
} from '../integration/harness.js';

let d: DaemonEnv;
let env: Env;
let runDir: string;

function cliEnv(): NodeJS.ProcessEnv {
  return { ...process.env, STRATA_ROOT: env.storeRoot, STRATA_SOCKET: env.socket, STRATA_RUN_DIR: runDir };
}

function strata(args: string[], input?: string): Promise<RunResult> {
  const [cmd, ...rest] = cliArgv(args);
  return runCollect(cmd, rest, { env: cliEnv(), input });
}

async function assertNothingLeft(): Promise<void> {
  await assertRunsLeftNothing(d, runDir);
}

test.before(async () => {
  d = await openDaemonEnv(['busybox']);
  env = d.env;
  runDir = join(env.dir, 'rundir');
});

test.after(() => closeDaemonEnv(d));

for (const runtime of ['crun', 'runc']) {
  test(`${runtime}: stdout, stderr and the exit code pass through; --rm leaves nothing`, async () => {
    const r = await strata([
      'run',
      '--rm',
      '--runtime',
      runtime,
      'busybox',
      'echo out; echo err >&2; exit 7',
    ]);
    assert.is(r.code, 7, r.stderr);
    assert.is(r.stdout, 'out\n');
    assert.is(r.stderr, 'err\n');
    await assertNothingLeft();
  });

  test(`${runtime}: -i passes stdin; options reach the container`, async () => {
    const r = await strata(
      [
        'run',
        '--rm',
        '-i',
        '--runtime',
        runtime,
        '-e',
        'GREETING=hi',
        '-w',
        '/etc',
        '-u',
        '0',
        '--read-only',
        'busybox',
        'read line; echo "$line $GREETING $(pwd) $(id -u)"; touch /x 2>/dev/null || echo ro',
      ],
      'piped\n',
    );
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout, 'piped hi /etc 0\nro\n');
    await assertNothingLeft();
  });

  test(`${runtime}: SIGTERM to strata run reaches the container; 143 comes back`, async () => {
    const [cmd, ...rest] = cliArgv([
      'run',
      '--rm',
      '--runtime',
      runtime,
      'busybox',
      'trap "echo got-term; exit 143" TERM; echo ready; while true; do sleep 0.1; done',
    ]);
    const child = spawn(cmd, rest, { env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout === 'ready\n') child.kill('SIGTERM');
    });
    assert.is(await code, 143, stderr);
    assert.is(stdout, 'ready\ngot-term\n');
    await assertNothingLeft();
  });

  test(`${runtime}: -t gives the container a terminal`, () => {
    const line = cliArgv([
      'run',
      '--rm',
      '-t',
      '--runtime',
      runtime,
      'busybox',
      'tty; echo "TERM=$TERM"; exit 4',
    ])
      .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
      .join(' ');
    const r = spawnSync('script', ['-eqc', line, '/dev/null'], {
      env: cliEnv(),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.is(r.status, 4, r.stdout + r.stderr);
    assert.match(r.stdout, /\/dev\/pts\/[0-9]+\r?\nTERM=xterm/);
  });

  test(`${runtime}: -d, ps, stop (the image's SIGQUIT), ps -a, rm`, async () => {
    const name = `web-${runtime}`;
    const started = await strata([
      'run',
      '-d',
      '--name',
      name,
      '--runtime',
      runtime,
      'busybox',
      'trap "echo quit; exit 3" QUIT; echo started; while true; do sleep 0.1; done',
    ]);
    assert.is(started.code, 0, started.stderr);
    const id = started.stdout.trim();
    assert.match(id, /^[0-9a-f]{64}$/);

    const ps = await strata(['ps', '--json']);
    const rows = JSON.parse(ps.stdout) as { id: string; name: string; status: string; pid?: number }[];
    assert.equal(
      rows.map((c) => [c.id, c.name, c.status]),
      [[id, name, 'running']],
    );
    assert.ok(rows[0].pid && rows[0].pid > 0);

    const dup = await strata(['run', '--name', name, '--runtime', runtime, 'busybox', 'true']);
    assert.is(dup.code, 125);
    assert.match(
      dup.stderr,
      `the container name "${name}" is already in use by container ${id.slice(0, 12)}`,
    );

    const stop = await strata(['stop', name]);
    assert.is(stop.code, 0, stop.stderr);
    assert.is((await strata(['ps'])).stdout.split('\n').length, 2, 'only the header: nothing runs');
    const all = await strata(['ps', '-a']);
    assert.match(all.stdout, new RegExp(`${id.slice(0, 12)} .*Exited \\(3\\).* ${name}\\n`));
    assert.is((await strata(['rm', id.slice(0, 8)])).code, 0);
    await assertNothingLeft();
  });
}

test('stop falls back to SIGKILL after -t; rm refuses a running container without -f', async () => {
  const started = await strata([
    'run',
    '-d',
    '--name',
    'stubborn',
    'busybox',
    'trap "" QUIT TERM; while true; do sleep 0.1; done',
  ]);
  assert.is(started.code, 0, started.stderr);
  const rm = await strata(['rm', 'stubborn']);
  assert.is(rm.code, 5);
  assert.match(rm.stderr, 'container stubborn is running: stop it first');
  const t0 = Date.now();
  assert.is((await strata(['stop', '-t', '1', 'stubborn'])).code, 0);
  assert.ok(Date.now() - t0 < 8000);
  assert.match((await strata(['ps', '-a'])).stdout, /Exited \(137\).* stubborn\n/);
  assert.is((await strata(['rm', 'stubborn'])).code, 0);

  const again = await strata(['run', '-d', '--name', 'forced', 'busybox', 'while true; do sleep 0.1; done']);
  assert.is(again.code, 0, again.stderr);
  assert.is((await strata(['rm', '-f', 'forced'])).code, 0);
  await assertNothingLeft();
});

test('without --rm the record stays for ps -a and rm; duplicate names are refused', async () => {
  const first = await strata(['run', '--name', 'keep', 'busybox', 'exit 2']);
  assert.is(first.code, 2);
  const dup = await strata(['run', '--name', 'keep', 'busybox', 'true']);
  assert.is(dup.code, 125);
  assert.match(dup.stderr, 'the container name "keep" is already in use');
  assert.match((await strata(['ps', '-a'])).stdout, /Exited \(2\).* keep\n/);
  assert.is((await strata(['rm', 'keep'])).code, 0);
  const gone = await strata(['rm', 'keep']);
  assert.is(gone.code, 3);
  assert.match(gone.stderr, 'no container named or with id "keep"');
  await assertNothingLeft();
});

test('an unknown image or a bad option is a clear error (125) and leaves nothing', async () => {
  const r = await strata(['run', '--rm', 'no-such-image', 'true']);
  assert.is(r.code, 125);
  assert.match(r.stderr, 'strata: no image named "no-such-image"');
  const bad = await strata(['run', '--network', 'bridge', 'busybox']);
  assert.is(bad.code, 125);
  assert.match(bad.stderr, '--network "bridge": use none or host');
  const volume = await strata(['run', '--rm', '-v', '/no/such/strata-source:/data', 'busybox', 'true']);
  assert.is(volume.code, 125);
  assert.is(volume.stderr, 'strata: bind mount source /no/such/strata-source (for /data) does not exist\n');
  await assertNothingLeft();
});

test('a command the image lacks is 127, one without execute permission 126, as podman says', async () => {
  for (const runtime of ['crun', 'runc']) {
    const command = (cmd: string) =>
      strata(['run', '--rm', '--runtime', runtime, '--entrypoint', '', 'busybox', cmd]);
    const missing = await command('nosuch');
    assert.is(missing.code, 127, missing.stderr);
    assert.match(missing.stderr, 'executable file "nosuch" not found in the image\'s $PATH');
    const plain = await command('/etc/passwd');
    assert.is(plain.code, 126, plain.stderr);
    assert.match(plain.stderr, '/etc/passwd in the image is not an executable file');
  }
  await assertNothingLeft();
});

test('a daemon serving another store refuses the run: 125 with the reason, nothing ran', async () => {
  await withDaemonEnv([], async ({ env: other }) => {
    const [cmd, ...rest] = cliArgv(['run', '--rm', 'busybox', 'echo ran']);
    const r = spawnSync(cmd, rest, { env: { ...cliEnv(), STRATA_SOCKET: other.socket }, encoding: 'utf8' });
    assert.is(r.status, 125, r.stderr);
    assert.is(r.stdout, '', 'the command never ran');
    assert.match(r.stderr, `serves the store ${other.storeRoot}, not ${env.storeRoot}`);
    assert.ok(await servesNothing(other), 'the other daemon serves nothing');
  });
  await assertNothingLeft();
});

for (const runtime of ['crun', 'runc']) {
  test(`${runtime}: a root that cannot be prepared is exit 125 with the daemon's reason`, async () => {
    // The lease directory replaced by a file: the bundle is written, but the root's lease cannot
    // be taken, so the createContainer hook fails inside the runtime.
    const leases = join(env.storeRoot, 'leases');
    renameSync(leases, `${leases}.moved`);
    writeFileSync(leases, '');
    try {
      const r = await strata(['run', '--rm', '--runtime', runtime, 'busybox', 'echo ran']);
      assert.is(r.code, 125, r.stderr);
      assert.is(r.stdout, '', 'the command never ran');
      assert.match(
        r.stderr,
        new RegExp(`strata: container \\S+ did not start: ${runtime} failed with exit code \\d+: .*ENOTDIR`),
      );
    } finally {
      rmSync(leases);
      renameSync(`${leases}.moved`, leases);
    }
    assert.ok(await servesNothing(env), 'the daemon serves nothing');
    await assertNothingLeft();
  });
}

test.run();
