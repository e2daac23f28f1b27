// Real `podman --runtime strata-runtime` (native/runtime/strata-runtime.c) with a private
// --root/--runroot and the containers.conf this host needs (docs/architecture.md#host-facts): the
// busybox image, which the test daemon's store holds too, is served from strata's store (inside,
// the root is strata's; on the host nothing of strata's is mounted); an image only podman holds
// runs unchanged on podman's own rootfs (pass-through) with one note. Exit codes, -it under a
// pty, -d then exec/logs/pause/unpause/stop/kill/rm, podman's run options, --restart, import on
// first use, bad input, a dead daemon, strata-runtime killed mid-create, conmon killed. After each
// test: no mount, lease, daemon session, container or conmon left.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { imageByConfig } from '../../src/daemon/runtime-service.js';
import { runtimeExecutable } from '../../src/executables.js';
import { busyboxImage } from '../fixtures/images.js';
import { unmountAll } from '../fixtures/mounts.js';
import {
  assertNoLeaks,
  closeDaemonEnv,
  eventually,
  isAlive,
  openDaemonEnv,
  runCollect,
  type DaemonEnv,
  type RunResult,
} from './harness.js';

let d: DaemonEnv;
let dir: string;
let wrapper: string;
let deadWrapper: string;
let importWrapper: string;
let noteLog: string;
let rootfs: string;
const SERVED = 'localhost/strata-rt/busybox:latest';
const PASS = 'localhost/strata-rt/other:latest';

/** A wrapper with the env podman strips from start and delete (it keeps PATH only). */
function writeWrapper(name: string, socket: string, extraEnv = ''): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    `#!/bin/sh\nexport STRATA_SOCKET=${socket} STRATA_RUNTIME_CONF=${join(dir, 'runtime.conf')}${extraEnv}\n` +
      `exec ${runtimeExecutable()} "$@"\n`,
  );
  chmodSync(path, 0o755);
  return path;
}

const podmanEnv = () => ({ ...process.env, CONTAINERS_CONF: join(dir, 'containers.conf') });
const podmanBase = (runtime: string) => [
  '--root',
  join(dir, 'root'),
  '--runroot',
  join(dir, 'run'),
  '--runtime',
  runtime,
];

function podman(args: string[], runtime = wrapper): Promise<RunResult> {
  return runCollect('podman', [...podmanBase(runtime), ...args], { env: podmanEnv() });
}

function podmanSync(args: string[]) {
  return spawnSync('podman', [...podmanBase(wrapper), ...args], { encoding: 'utf8', env: podmanEnv() });
}

test.before(async () => {
  d = await openDaemonEnv(['busybox']);
  dir = join(d.env.dir, 'podman');
  mkdirSync(dir);
  // This host's ulimits; podman's per-boot state and locks in this test's own directory (by
  // default every podman shares /run/libpod and /dev/shm/libpod_lock, whatever its --root).
  writeFileSync(
    join(dir, 'containers.conf'),
    '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n' +
      `[engine]\ntmp_dir = "${join(dir, 'tmp')}"\nlock_type = "file"\n`,
  );
  noteLog = join(dir, 'notes.log');
  writeFileSync(join(dir, 'runtime.conf'), `# test\nlog = ${noteLog}\n`);
  wrapper = writeWrapper('strata-runtime', d.env.socket);
  deadWrapper = writeWrapper('strata-runtime-dead', join(dir, 'no-daemon.sock'));
  importWrapper = writeWrapper('strata-runtime-import', d.env.socket, ' STRATA_RUNTIME_IMPORT=first-use');
  const img = await busyboxImage();
  rootfs = img.rootfs;
  // The same OCI layout the store imported: podman's image ID is the config digest strata records.
  let r = podmanSync(['pull', '-q', `oci:${img.ociLayout}:latest`]);
  assert.is(r.status, 0, r.stderr);
  r = podmanSync(['tag', r.stdout.trim(), SERVED]);
  assert.is(r.status, 0, r.stderr);
  // An image strata does not hold: busybox's files under a config podman writes itself.
  r = spawnSync(
    'sh',
    ['-c', `tar -C ${img.rootfs} -c . | podman ${podmanBase(wrapper).join(' ')} import -q - ${PASS}`],
    { encoding: 'utf8', env: podmanEnv() },
  );
  assert.is(r.status, 0, r.stderr);
});

test.after(async () => {
  try {
    podmanSync(['system', 'reset', '--force']);
    await unmountAll(dir);
  } finally {
    await closeDaemonEnv(d);
  }
});

/** No container, conmon, strata mount, lease or served root left. */
async function assertNothingLeft(): Promise<void> {
  assert.is(podmanSync(['ps', '-aq']).stdout, '', 'podman keeps no container');
  const conmons = spawnSync('pgrep', ['-f', `conmon.*${dir}`], { encoding: 'utf8' }).stdout.trim();
  assert.is(conmons, '', 'no conmon left');
  await assertNoLeaks(d.env, d.mountsBefore);
}

test("store-served: the root inside is strata's, exit codes 0 and 1, one note, nothing left", async () => {
  const r = await podman([
    'run',
    '--rm',
    '--entrypoint',
    '',
    SERVED,
    'sh',
    '-c',
    'grep " / " /proc/self/mountinfo; head -1 /etc/passwd; exit 1',
  ]);
  assert.is(r.code, 1, r.stderr);
  // The writable overlay strata serves over its FUSE tree (src/mount/serve.ts), not podman's.
  assert.match(r.stdout, / \/ \/ rw,[^\n]* - overlay strata /);
  assert.match(r.stdout, 'root:x:0:0:root:/root:/bin/sh');
  const ok = await podman(['run', '--rm', '--entrypoint', '', SERVED, 'true']);
  assert.is(ok.code, 0, ok.stderr);
  const log = readFileSync(d.env.logFile, 'utf8');
  assert.match(log, /serving image sha256:[0-9a-f]{64} \(containers\/storage image sha256:/);
  assert.match(log, /released \(FUSE session ended: unmounted \(ENODEV\)/);
  assert.match(readFileSync(noteLog, 'utf8'), /level=info msg="container [0-9a-f]{64}: serving image/);
  await assertNothingLeft();
});

test("pass-through: an image strata lacks runs on podman's rootfs, with one note", async () => {
  const r = await podman(['run', '--rm', PASS, 'sh', '-c', 'grep " / " /proc/self/mountinfo; exit 0']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, / \/ \/ [^\n]* - overlay overlay /);
  assert.match(
    readFileSync(noteLog, 'utf8'),
    /is not in the strata store [^\n]*; running bundle [^\n]* unchanged/,
  );
  await assertNothingLeft();
});

test('exit codes as with runc: 125 (bad option), 126 (not executable), 127 (not found), 137 (killed)', async () => {
  const bad = await podman(['run', '--rm', '--no-such-option', SERVED]);
  assert.is(bad.code, 125);
  const noexec = await podman(['run', '--rm', '--entrypoint', '/etc/passwd', SERVED]);
  assert.is(noexec.code, 126, noexec.stderr);
  assert.match(noexec.stderr, 'permission denied');
  const missing = await podman(['run', '--rm', '--entrypoint', '/nonexistent', SERVED]);
  assert.is(missing.code, 127, missing.stderr);
  assert.match(missing.stderr, 'no such file or directory');
  const id = (await podman(['run', '-d', '--entrypoint', '', SERVED, 'sleep', '60'])).stdout.trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  assert.is((await podman(['kill', id])).code, 0);
  const wait = await podman(['wait', id]);
  assert.is(wait.stdout.trim(), '137', wait.stderr);
  assert.is((await podman(['rm', id])).code, 0);
  await assertNothingLeft();
});

test('-it under a pty: a terminal inside, the exit code out', async () => {
  const cmd = `podman ${podmanBase(wrapper).join(' ')} run -it --rm --entrypoint '' ${SERVED} sh -c 'tty; exit 5'`;
  const r = await runCollect('script', ['-qec', cmd, '/dev/null'], { env: podmanEnv() });
  assert.is(r.code, 5, r.stdout + r.stderr);
  assert.match(r.stdout, '/dev/pts/0');
  await assertNothingLeft();
});

test('-d, then exec, logs, pause, unpause, stop, rm', async () => {
  const run = await podman([
    'run',
    '-d',
    '--entrypoint',
    '',
    SERVED,
    'sh',
    '-c',
    'echo started; exec sleep 60',
  ]);
  assert.is(run.code, 0, run.stderr);
  const id = run.stdout.trim();
  const exec = await podman(['exec', id, 'sh', '-c', 'head -1 /etc/group; exit 4']);
  assert.is(exec.code, 4, exec.stderr);
  assert.is(exec.stdout, 'root:x:0:\n');
  assert.ok(await eventually(async () => (await podman(['logs', id])).stdout === 'started\n'));
  assert.is((await podman(['pause', id])).code, 0);
  assert.is((await podman(['inspect', '--format', '{{.State.Status}}', id])).stdout.trim(), 'paused');
  assert.is((await podman(['unpause', id])).code, 0);
  assert.is((await podman(['inspect', '--format', '{{.State.Status}}', id])).stdout.trim(), 'running');
  const stop = await podman(['stop', '-t', '1', id]);
  assert.is(stop.code, 0, stop.stderr);
  assert.is((await podman(['inspect', '--format', '{{.State.Status}}', id])).stdout.trim(), 'exited');
  assert.is((await podman(['rm', id])).code, 0);
  await assertNothingLeft();
});

test("podman's options on a served root: --read-only, -v, --tmpfs, --user, -w, --cap-drop, --security-opt, --init", async () => {
  const vol = join(dir, 'volume');
  mkdirSync(vol, { recursive: true });
  writeFileSync(join(vol, 'from-host'), 'hello\n');
  const script = [
    'touch /x 2>&1 | grep -o "Read-only file system"',
    'cat /data/from-host',
    'echo t > /scratch/t && cat /scratch/t',
    'id -u',
    'pwd',
    'grep -E "^(CapEff|NoNewPrivs):" /proc/self/status',
    'cat /proc/1/cmdline | tr "\\0" " "; echo',
    'grep " / " /proc/self/mountinfo',
  ].join('; ');
  const r = await podman([
    'run',
    '--rm',
    '--read-only',
    '-v',
    `${vol}:/data:ro`,
    '--tmpfs',
    '/scratch:mode=1777',
    '--user',
    '1000:1000',
    '-w',
    '/data',
    '--cap-drop',
    'all',
    '--security-opt',
    'no-new-privileges',
    '--init',
    '--entrypoint',
    '',
    SERVED,
    'sh',
    '-c',
    script,
  ]);
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.equal(lines.slice(0, 8), [
    'Read-only file system',
    'hello',
    't',
    '1000',
    '/data',
    'CapEff:\t0000000000000000',
    'NoNewPrivs:\t1',
    `/run/podman-init -- sh -c ${script} `,
  ]);
  // The root is strata's own FUSE tree (no writable layer with --read-only), mounted read-only.
  assert.match(lines[8], /^\d+ \d+ [\d:]+ \/ \/ ro,[^\n]* - fuse\.strata strata-ctr:/, r.stdout);
  await assertNothingLeft();
});

// podman's restart deletes and creates the container again at once (the same id and bundle): the
// end of one run's runtime must not release the next run's root, and the next create may come
// before the daemon has seen the last root's end (test/daemon/runtime-service.test.ts).
test('--restart on-failure:2: podman restarts the served container twice, its writes kept', async () => {
  const run = await podman([
    'run',
    '-d',
    '--restart',
    'on-failure:2',
    '--entrypoint',
    '',
    SERVED,
    'sh',
    '-c',
    'echo x >> /tmp/count; wc -l < /tmp/count; exit 3',
  ]);
  assert.is(run.code, 0, run.stderr);
  const id = run.stdout.trim();
  try {
    const state = async () =>
      (
        await podman(['inspect', '--format', '{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}', id])
      ).stdout.trim();
    assert.ok(await eventually(async () => (await state()) === '2 exited 3', 30_000), await state());
    // Each run saw the writes of the runs before it. The state can read exited a moment before
    // conmon has written the last run's output to the log (seen once in CI): wait for it.
    const logged = async () => (await podman(['logs', id])).stdout.replace(/\s+/g, ' ').trim();
    await eventually(async () => (await logged()) === '1 2 3', 10_000);
    assert.is(await logged(), '1 2 3');
  } finally {
    await podman(['rm', '-f', '-t', '0', id]);
  }
  await assertNothingLeft();
});

test('a container\'s writes survive its restart, as in podman\'s own layer; "/" looks as podman makes it', async () => {
  const script = 'stat -c %a /; echo x >> /tmp/count; wc -l < /tmp/count';
  const name = 'rt-restart';
  const first = await podman(['run', '--name', name, '--entrypoint', '', SERVED, 'sh', '-c', script]);
  assert.is(first.code, 0, first.stderr);
  const again = await podman(['start', '-a', name]);
  assert.is(again.code, 0, again.stderr);
  const baseline = await podman(['run', '--rm', '--entrypoint', '', SERVED, 'stat', '-c', '%a', '/'], 'runc');
  assert.is(first.stdout, `${baseline.stdout.trim()}\n1\n`);
  assert.is(again.stdout, `${baseline.stdout.trim()}\n2\n`);
  assert.is((await podman(['rm', name])).code, 0);
  await assertNothingLeft();
});

// buildah run writes into the working container's own layer, which `buildah commit` takes: its
// bundle (a temp dir, id buildah-<n>) names no image and must run unchanged, so strata-runtime
// passes it through with its note, and the build's writes stay buildah's.
test("buildah run --runtime strata-runtime: runs on buildah's own layer (pass-through), writes kept for commit", async () => {
  const root = ['--root', join(dir, 'buildah-root'), '--runroot', join(dir, 'buildah-run')];
  const buildah = (...args: string[]) => runCollect('buildah', [...root, ...args], { env: podmanEnv() });
  const from = await buildah('from', '--pull-never', `oci:${(await busyboxImage()).ociLayout}:latest`);
  assert.is(from.code, 0, from.stderr);
  const ctr = from.stdout.trim().split('\n').at(-1) ?? '';
  try {
    const run = await buildah(
      'run',
      '--runtime',
      wrapper,
      ctr,
      '--',
      'sh',
      '-c',
      'grep " / " /proc/self/mountinfo; echo built > /tmp/built',
    );
    assert.is(run.code, 0, run.stderr);
    assert.match(run.stdout, / \/ \/ rw,[^\n]* - overlay overlay [^\n]*buildah-root\/overlay/);
    assert.match(
      readFileSync(noteLog, 'utf8'),
      /container buildah-[^:]*: no image known for it [^\n]*; running bundle [^\n]* unchanged/,
    );
    const again = await buildah('run', '--runtime', wrapper, ctr, '--', 'cat', '/tmp/built');
    assert.is(again.stdout, 'built\n', again.stderr);
  } finally {
    await buildah('rm', '-a');
    await buildah('rmi', '-a', '-f');
    await unmountAll(join(dir, 'buildah-root'));
  }
  await assertNothingLeft();
});

test('no daemon: pass-through works with a note naming the socket; a strata-annotated bundle fails naming it', async () => {
  const dead = join(dir, 'no-daemon.sock');
  const r = await podman(['run', '--rm', '--entrypoint', '', SERVED, 'sh', '-c', 'echo plain'], deadWrapper);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'plain\n');
  assert.match(readFileSync(noteLog, 'utf8'), `no strata daemon on ${dead}; running bundle`);
  const f = await podman(
    ['run', '--rm', '--annotation', 'org.strata.image=busybox', '--entrypoint', '', SERVED, 'true'],
    deadWrapper,
  );
  assert.ok(f.code !== 0);
  assert.match(f.stderr, `no strata daemon answers on ${dead}`);
  await assertNothingLeft();
});

/**
 * podman imports busybox's files and a file named for `name` as a new image: a config and a layer
 * of its own, so a new image id strata lacks, no layer the store has.
 */
function podmanImport(name: string): string {
  const extra = join(dir, `extra-${name.replace(/\W+/g, '-')}`);
  mkdirSync(extra, { recursive: true });
  writeFileSync(join(extra, 'image-name'), name);
  const r = spawnSync(
    'sh',
    [
      '-c',
      `tar -C ${rootfs} -c . -C ${extra} image-name | podman ${podmanBase(wrapper).join(' ')} import -q - ${name}`,
    ],
    { encoding: 'utf8', env: podmanEnv() },
  );
  assert.is(r.status, 0, r.stderr);
  return r.stdout.trim().replace(/^sha256:/, '');
}

test('import on first use (opted in): two containers of a new image at once, one import, both served', async () => {
  const name = 'localhost/strata-rt/first-use:latest';
  const imageId = podmanImport(name);
  const logBefore = readFileSync(d.env.logFile, 'utf8').length;
  const script = 'grep " / " /proc/self/mountinfo';
  const [a, b] = await Promise.all([
    podman(['run', '--rm', name, 'sh', '-c', script], importWrapper),
    podman(['run', '--rm', name, 'sh', '-c', script], importWrapper),
  ]);
  assert.is(a.code, 0, a.stderr);
  assert.is(b.code, 0, b.stderr);
  assert.match(a.stdout, / \/ \/ rw,[^\n]* - overlay strata /);
  assert.match(b.stdout, / \/ \/ rw,[^\n]* - overlay strata /);
  const log = readFileSync(d.env.logFile, 'utf8').slice(logBefore);
  assert.is(log.split(`importing image sha256:${imageId}`).length - 1, 1, `one import:\n${log}`);
  assert.match(log, /, imported on first use in \d+ ms\) from the strata store/);
  // The store has podman's image now (its config digest is podman's image id).
  assert.ok(await imageByConfig(d.env.storeRoot, `sha256:${imageId}`));
  await assertNothingLeft();
});

test("import on first use: an image that fails to import runs on podman's rootfs with the reason, not tried again at once", async () => {
  const name = 'localhost/strata-rt/broken:latest';
  const imageId = podmanImport(name);
  // One byte more in a file of its one layer (whose id is its diff_id): tar-split no longer
  // rebuilds the layer podman recorded.
  const layers = podmanSync(['image', 'inspect', '--format', '{{index .RootFS.Layers 0}}', name]);
  assert.is(layers.status, 0, layers.stderr);
  const layerId = layers.stdout.trim().replace(/^sha256:/, '');
  writeFileSync(join(dir, 'root', 'overlay', layerId, 'diff', 'etc', 'group'), 'x', { flag: 'a' });
  const notesBefore = readFileSync(noteLog, 'utf8').length;
  const first = await podman(
    ['run', '--rm', name, 'sh', '-c', 'grep " / " /proc/self/mountinfo'],
    importWrapper,
  );
  assert.is(first.code, 0, first.stderr);
  assert.match(first.stdout, / \/ \/ [^\n]* - overlay overlay /, "podman's own rootfs");
  const again = await podman(['run', '--rm', name, 'true'], importWrapper);
  assert.is(again.code, 0, again.stderr);
  const notes = readFileSync(noteLog, 'utf8').slice(notesBefore);
  assert.match(
    notes,
    `importing image sha256:${imageId} from containers/storage ${join(dir, 'root')} failed: `,
  );
  assert.match(notes, /\(tried again in \d+ s\); running bundle/);
  assert.not.ok(
    await imageByConfig(d.env.storeRoot, `sha256:${imageId}`),
    'nothing half-imported is visible',
  );
  await assertNothingLeft();
});

test('strata-runtime killed while the daemon prepares: podman start fails, nothing is left, a retry and rm -f work', async () => {
  const name = 'rt-killed-create';
  // A runtime that notes its pid (the same across exec) on create, then is strata-runtime.
  // podman keeps the runtime a container was created with.
  const pidFile = join(dir, 'create.pid');
  const noting = join(dir, 'strata-runtime-noting');
  writeFileSync(
    noting,
    `#!/bin/sh\ncase " $* " in *" create "*) echo $$ > ${pidFile};; esac\nexec ${wrapper} "$@"\n`,
  );
  chmodSync(noting, 0o755);
  const created = await podman(['create', '--name', name, '--entrypoint', '', SERVED, 'sleep', '60'], noting);
  assert.is(created.code, 0, created.stderr);
  try {
    // The daemon stopped: strata-runtime connects and sends (the kernel queues both) and waits.
    process.kill(d.daemon.pid, 'SIGSTOP');
    let start: Promise<RunResult>;
    let pid = 0;
    try {
      start = podman(['start', name], noting);
      assert.ok(await eventually(() => existsSync(pidFile), 20_000), 'the runtime was asked to create');
      pid = Number(readFileSync(pidFile, 'utf8'));
      // Until it waits for the daemon's answer (a poll on the socket).
      await eventually(() => {
        try {
          return readFileSync(`/proc/${pid}/wchan`, 'utf8').includes('poll');
        } catch {
          return true;
        }
      }, 5000);
      process.kill(pid, 'SIGKILL');
    } finally {
      process.kill(d.daemon.pid, 'SIGCONT');
    }
    const r = await start;
    assert.ok(r.code !== 0, 'podman start reports the failure');
    // The daemon prepared a root for a runtime already dead: released, no lease, nothing mounted.
    const released = `its runtime (pid ${pid}) ended without attaching it`;
    assert.ok(await eventually(() => readFileSync(d.env.logFile, 'utf8').includes(released)), released);
    // (podman unmounts its own storage a moment after its start failed.)
    await eventually(
      () =>
        assertNoLeaks(d.env, d.mountsBefore).then(
          () => true,
          () => false,
        ),
      10_000,
    );
    await assertNoLeaks(d.env, d.mountsBefore);
    const again = await podman(['start', name], noting);
    assert.is(again.code, 0, again.stderr);
    const inside = await podman(['exec', name, 'sh', '-c', 'grep " / " /proc/self/mountinfo']);
    assert.match(inside.stdout, / \/ \/ rw,[^\n]* - overlay strata /, inside.stderr);
  } finally {
    const rm = await podman(['rm', '-f', '-t', '0', name]);
    assert.is(rm.code, 0, rm.stderr);
  }
  await assertNothingLeft();
});

test('conmon killed while its container runs: podman still sees it; rm -f ends it and leaves nothing', async () => {
  const run = await podman(['run', '-d', '--entrypoint', '', SERVED, 'sleep', '600']);
  assert.is(run.code, 0, run.stderr);
  const id = run.stdout.trim();
  const conmon = Number((await podman(['inspect', '--format', '{{.State.ConmonPid}}', id])).stdout.trim());
  const pid = Number((await podman(['inspect', '--format', '{{.State.Pid}}', id])).stdout.trim());
  assert.ok(conmon > 0 && pid > 0, 'podman knows conmon and the container');
  try {
    process.kill(conmon, 'SIGKILL');
    assert.ok(await eventually(() => !isAlive(conmon)), 'conmon is gone');
    // The container runs on (runc's state says so), on strata's root.
    assert.is((await podman(['inspect', '--format', '{{.State.Status}}', id])).stdout.trim(), 'running');
    assert.ok(isAlive(pid));
  } finally {
    const rm = await podman(['rm', '-f', '-t', '0', id]);
    assert.is(rm.code, 0, rm.stderr);
  }
  assert.ok(await eventually(() => !isAlive(pid)), 'the container process is gone');
  await assertNothingLeft();
});

/** strata-runtime and runc on the same bad input: the same words (less runc's timestamps) and code. */
async function sameAsRunc(args: string[], cwd: string): Promise<RunResult> {
  const strip = (s: string) => s.replace(/time="[^"]*"/g, 'time=T');
  const a = await runCollect(runtimeExecutable(), args, {
    cwd,
    env: { ...process.env, STRATA_SOCKET: d.env.socket, STRATA_OCI_RUNTIME: 'runc' },
  });
  const b = await runCollect('runc', args, { cwd });
  assert.is(a.code, b.code, `${args.join(' ')}: ${a.stderr}`);
  assert.is(strip(a.stdout), strip(b.stdout));
  assert.is(strip(a.stderr), strip(b.stderr));
  return a;
}

test("bad input gets runc's own answer: no config.json, a bad id, an unknown verb or flag", async () => {
  const empty = join(dir, 'empty-bundle');
  mkdirSync(empty, { recursive: true });
  const r = await sameAsRunc(['create', '--bundle', empty, 'rt-no-config'], dir);
  assert.is(r.code, 1);
  assert.match(r.stderr, 'config.json');
  await sameAsRunc(['create', '--bundle', empty, 'bad/id'], dir);
  await sameAsRunc(['no-such-verb'], dir);
  await sameAsRunc(['--no-such-flag', 'list'], dir);
  await sameAsRunc(['state', 'rt-no-such-container'], dir);
  assert.not.ok(existsSync(join(empty, 'strata-rootfs')), 'the bundle is left as it was');
  await assertNoLeaks(d.env, d.mountsBefore);
});

test.run();
