// `strata run --vm` with real qemu (TCG here): one VM boot shared by the tests, busybox and Debian
// through the agent with their roots served from the host's store, exit codes, env/workdir/user,
// stdin, concurrent containers, the hypervisor dying mid-run (the container fails, the next run
// boots a fresh VM), `strata vm ls|stop`, and nothing left on the host: no qemu, no socket, no
// lease. Faults without a boot: a missing kernel, qemu absent, a guest that never says hello.
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  chmodSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { cliArgv } from '../../src/executables.js';
import { DEFAULT_CMDLINE } from '../../src/vm/backend.js';
import { VmHost, pidAlive, readVmState } from '../../src/vm/host.js';
import { QemuBackend } from '../../src/vm/qemu.js';
import { vmImageDir, vmImageFiles } from '../fixtures/vm-image.js';
import { eventually, leaseIds, makeEnv, removeEnv, type Env } from '../integration/harness.js';

let env: Env;
let runDir: string;
let imageDir: string;
const stateDir = () => join(runDir, 'vm', 'default');

function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, STRATA_VM_IMAGE: imageDir, STRATA_VM_IDLE_MS: '300000', ...extra };
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function strata(args: string[], input?: string, extra?: NodeJS.ProcessEnv): Promise<Result> {
  const [cmd, ...rest] = cliArgv(['--root', env.storeRoot, ...args]);
  return new Promise((resolve) => {
    const child = spawn(cmd, rest, { env: cliEnv(extra), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.stdin.end(input);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const vmRun = (args: string[], input?: string) =>
  strata(['run', '--vm', '--rm', '--run-dir', runDir, ...args], input);

/** qemu (and virtiofsd) processes whose command line names our run dir. */
function ourQemus(): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if ((cmd.includes('qemu-system') || cmd.includes('virtiofsd')) && cmd.includes(runDir))
        out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}

test.before(async () => {
  imageDir = await vmImageDir();
  env = await makeEnv(['busybox', 'debian']);
  runDir = mkdtempSync(join(tmpdir(), 'strata-vm-run-'));
});

test.after(async () => {
  const st = readVmState(stateDir());
  if (st && pidAlive(st.hostPid)) process.kill(st.hostPid, 'SIGKILL');
  for (const pid of ourQemus()) process.kill(pid, 'SIGKILL');
  removeEnv(env);
  rmSync(runDir, { recursive: true, force: true });
});

test('busybox in a VM: output, exit code, env, workdir and user from the image and the flags', async () => {
  const r = await vmRun(['busybox']);
  assert.is(r.stdout, 'hello from strata\n', r.stderr);
  assert.is(r.code, 0);
  const st = readVmState(stateDir());
  assert.ok(st && st.backend === 'qemu' && pidAlive(st.hypervisorPid), 'one VM serves the runs');
  const r2 = await vmRun([
    '--entrypoint',
    '',
    '-e',
    'X=from-flag',
    'busybox',
    '/bin/sh',
    '-c',
    'echo "$X $STRATA_TEST $(pwd) $(id -u):$(id -g)"; cat /home/app/notes.txt; exit 7',
  ]);
  assert.is(r2.stdout, 'from-flag busybox /home/app 1000:1000\nowned by app, group staff\n', r2.stderr);
  assert.is(r2.code, 7);
  const r3 = await vmRun([
    '-u',
    'root',
    '-w',
    '/tmp',
    '--entrypoint',
    '',
    'busybox',
    'sh',
    '-c',
    'pwd; id -u',
  ]);
  assert.is(r3.stdout, '/tmp\n0\n');
});

test('Debian in the same VM; stdin with -i; a missing command is 127', async () => {
  const bootMs = readVmState(stateDir())?.bootMs;
  const r = await vmRun(['debian', 'sh', '-c', 'cat /etc/debian_version; ls /usr/bin | wc -l']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^12\.\d+\n\d+\n$/);
  assert.is(readVmState(stateDir())?.bootMs, bootMs, 'no second boot');
  const i = await vmRun(['-i', 'debian', 'sh', '-c', 'tr a-z A-Z'], 'piped through\n');
  assert.is(i.stdout, 'PIPED THROUGH\n');
  const missing = await vmRun(['debian', '/no/such/cmd']);
  assert.is(missing.code, 127);
  assert.match(missing.stderr, /\/no\/such\/cmd.*No such file or directory/);
});

test('under crun in the guest: the FUSE root, its own pid namespace, seccomp, no capabilities, a writable overlay', async () => {
  const ro = await vmRun([
    '--read-only',
    '--entrypoint',
    '',
    'busybox',
    'sh',
    '-c',
    'grep " / / " /proc/self/mountinfo; echo pid=$$; grep -E "^(Seccomp|CapEff):" /proc/self/status; exit 5',
  ]);
  assert.is(ro.code, 5, ro.stderr);
  assert.match(
    ro.stdout,
    / \/ \/ ro,[^ ]* - fuse\.strata strata ro,/,
    'the root is the FUSE mount from the host',
  );
  assert.match(ro.stdout, /^pid=1$/m, 'its own pid namespace');
  assert.match(ro.stdout, /^Seccomp:\s+2$/m);
  assert.match(ro.stdout, /^CapEff:\s+0+$/m, 'uid 1000 keeps no capability');
  const rw = await vmRun([
    '--entrypoint',
    '',
    'busybox',
    'sh',
    '-c',
    'echo written > /home/app/new && cat /home/app/new && grep " / / " /proc/self/mountinfo',
  ]);
  assert.is(rw.code, 0, rw.stderr);
  assert.match(rw.stdout, /^written\n.* \/ \/ rw,[^ ]* - overlay /);
  const again = await vmRun(['--entrypoint', '', 'busybox', 'cat', '/home/app/new']);
  assert.is(again.code, 1, "a container's writes die with it");
});

/** Mounts on the host under our run dir (the -v bind mounts shared into the VM). */
function ourMounts(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4]?.startsWith(runDir));
}

test('-v through virtio-fs: a read-write directory, a read-only file; nothing stays mounted', async () => {
  const vol = mkdtempSync(join(tmpdir(), 'strata-vm-vol-'));
  try {
    writeFileSync(join(vol, 'in.txt'), 'from the host\n');
    const rw = await vmRun([
      ...['-u', 'root', '-v', `${vol}:/vol`, '--entrypoint', '', 'busybox'],
      ...[
        'sh',
        '-c',
        'cat /vol/in.txt; echo from the guest > /vol/out.txt; grep " /vol " /proc/self/mountinfo',
      ],
    ]);
    assert.is(rw.code, 0, rw.stderr);
    assert.match(rw.stdout, /^from the host\n.* \/vol rw,.* - virtiofs /);
    assert.is(readFileSync(join(vol, 'out.txt'), 'utf8'), 'from the guest\n');
    const ro = await vmRun([
      ...['-u', 'root', '-v', `${join(vol, 'in.txt')}:/etc/in.txt:ro`, '--entrypoint', '', 'busybox'],
      ...['sh', '-c', 'cat /etc/in.txt; echo more >> /etc/in.txt'],
    ]);
    assert.is(ro.stdout, 'from the host\n');
    assert.is(ro.code, 1);
    assert.match(ro.stderr, /Read-only file system/);
    assert.is(readFileSync(join(vol, 'in.txt'), 'utf8'), 'from the host\n');
    assert.equal(ourMounts(), [], 'no bind mount is left in the share');
    assert.equal(readdirSync(join(stateDir(), 'shares')), []);
  } finally {
    rmSync(vol, { recursive: true, force: true });
  }
});

test('concurrent containers in one VM; no lease is left after them', async () => {
  const runs = await Promise.all(
    [1, 2, 3].map((n) =>
      vmRun(['--entrypoint', '', 'busybox', 'sh', '-c', `sleep 1; echo run ${n}; exit ${n}`]),
    ),
  );
  assert.equal(
    runs.map((r) => [r.code, r.stdout]),
    [
      [1, 'run 1\n'],
      [2, 'run 2\n'],
      [3, 'run 3\n'],
    ],
  );
  assert.ok(await eventually(async () => (await leaseIds(env)).length === 0, 5000), 'leases released');
  const ls = await strata(['vm', 'ls', '--run-dir', runDir]);
  assert.match(ls.stdout, /default\s+running\s+qemu/);
  // Nothing left in the guest either: no bundle, no crun state, no FUSE mount.
  const guest = await strata([
    'vm',
    'exec',
    '--run-dir',
    runDir,
    '--',
    'sh',
    '-c',
    'ls /run/strata/b /run/strata/crun; grep -c fuse /proc/mounts',
  ]);
  assert.is(guest.stdout, '/run/strata/b:\n\n/run/strata/crun:\n0\n', guest.stderr);
});

test('a signal to strata run --vm reaches the container', async () => {
  const [cmd, ...rest] = cliArgv([
    '--root',
    env.storeRoot,
    ...['run', '--vm', '--rm', '--run-dir', runDir, '--entrypoint', '', 'busybox'],
    ...['sh', '-c', 'trap "echo got TERM; exit 3" TERM; echo ready; while true; do sleep 0.1; done'],
  ]);
  const child = spawn(cmd, rest, { env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  const closed = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  assert.ok(await eventually(() => stdout.includes('ready'), 60_000), 'the container started');
  child.kill('SIGTERM');
  assert.is(await closed, 3);
  assert.is(stdout, 'ready\ngot TERM\n');
});

test("-t under crun: a pty of the container's own (ttyname), the terminal size, input through it, the exit code", async () => {
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const argv = cliArgv([
    '--root',
    env.storeRoot,
    ...['run', '--vm', '--rm', '-t', '-i', '--run-dir', runDir, '--entrypoint', '', 'busybox'],
    ...['sh', '-c', 'stty size; tty; read x; echo "got $x"; exit 3'],
  ]);
  // script(1) gives the client a terminal of 33x101.
  const line = `stty rows 33 cols 101; ${argv.map(quote).join(' ')}`;
  const child = spawn('script', ['-qec', line, '/dev/null'], {
    env: cliEnv(),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  const closed = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  assert.ok(await eventually(() => out.includes('/dev/pts/'), 60_000), `the container started: ${out}`);
  child.stdin.write('hello\n');
  assert.is(await closed, 3, out);
  assert.match(out, /^33 101\r?\r\n\/dev\/pts\/\d+\r?\r\n/);
  assert.match(out, /got hello/);
});

test('-d: the container outlives its client; strata vm logs, crun in the guest reaches it, killing it ends it', async () => {
  const r = await strata([
    ...['run', '--vm', '-d', '--rm', '--run-dir', runDir, '--entrypoint', '', 'busybox'],
    ...['sh', '-c', 'echo started; while true; do sleep 1; done'],
  ]);
  assert.is(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.match(id, /^strata-[0-9a-f]{8}-\d+$/);
  const logs = async () => (await strata(['vm', 'logs', id, '--run-dir', runDir])).stdout;
  assert.ok(await eventually(async () => (await logs()) === 'started\n', 60_000), 'its output is in its log');
  const guest = (args: string[]) => strata(['vm', 'exec', '--run-dir', runDir, '--', ...args]);
  const crun = ['crun', '--root', '/run/strata/crun'];
  const inside = await guest([...crun, 'exec', id, 'cat', '/etc/motd']);
  assert.is(inside.stdout, 'strata busybox test image\n', inside.stderr);
  await guest([...crun, 'kill', id, 'KILL']);
  const hostLog = join(stateDir(), 'host.log');
  assert.ok(
    await eventually(
      () => readFileSync(hostLog, 'utf8').includes(`detached container ${id} exited 137`),
      60_000,
    ),
    'the VM host saw it end',
  );
  assert.is((await guest(['ls', '/run/strata/b'])).stdout, '', 'no bundle left');
  assert.is((await logs()).startsWith('started\n'), true, 'the log outlives it');
});

test('the hypervisor dying mid-run fails the container; the next run boots a fresh VM', async () => {
  const st = readVmState(stateDir())!;
  const running = vmRun(['--entrypoint', '', 'busybox', 'sh', '-c', 'echo started; sleep 60']);
  assert.ok(await eventually(async () => (await leaseIds(env)).length > 0, 60_000), 'the container started');
  process.kill(st.hypervisorPid, 'SIGKILL');
  const r = await running;
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /VM agent|went away|stopping/);
  assert.ok(await eventually(() => !pidAlive(st.hostPid), 10_000), 'the VM host ended');
  assert.not.ok(existsSync(join(stateDir(), 'host.sock')));
  assert.not.ok(existsSync(join(stateDir(), 'agent.sock')));
  const again = await vmRun(['--entrypoint', '', 'busybox', 'echo', 'back']);
  assert.is(again.stdout, 'back\n', again.stderr);
  assert.is.not(readVmState(stateDir())?.hostPid, st.hostPid);
});

test('the VM host killed with -9 mid-run: the next run kills its hypervisor and releases its lease', async () => {
  const st = readVmState(stateDir())!;
  const running = vmRun(['--entrypoint', '', 'busybox', 'sh', '-c', 'echo started; sleep 60']);
  assert.ok(await eventually(async () => (await leaseIds(env)).length > 0, 60_000), 'the container started');
  const stale = await leaseIds(env);
  process.kill(st.hostPid, 'SIGKILL');
  const r = await running;
  assert.is.not(r.code, 0);
  assert.ok(pidAlive(st.hypervisorPid), 'the orphaned hypervisor still runs until the next host');
  const again = await vmRun(['--entrypoint', '', 'busybox', 'echo', 'again']);
  assert.is(again.stdout, 'again\n', again.stderr);
  assert.ok(await eventually(() => !pidAlive(st.hypervisorPid), 5000), 'the old hypervisor was killed');
  const now = await leaseIds(env);
  assert.equal(
    now.filter((id) => stale.includes(id)),
    [],
    "the dead host's lease was released",
  );
});

test('strata vm stop leaves no qemu, socket, lease or state behind', async () => {
  const st = readVmState(stateDir())!;
  const r = await strata(['vm', 'stop', '--run-dir', runDir]);
  assert.is(r.code, 0, r.stderr);
  assert.not.ok(pidAlive(st.hostPid));
  assert.not.ok(pidAlive(st.hypervisorPid));
  assert.equal(ourQemus(), [], 'no qemu, no virtiofsd');
  assert.equal(ourMounts(), []);
  const left = readdirSync(stateDir()).filter(
    (f) => f.endsWith('.sock') || f === 'state.json' || f === 'shares',
  );
  assert.equal(left, []);
  assert.equal(await leaseIds(env), []);
});

test('faults: a missing kernel, qemu absent, a guest that never says hello', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-vm-fault-'));
  try {
    const files = vmImageFiles(imageDir);
    const config = { stateDir: dir, ...files, cmdline: DEFAULT_CMDLINE, memoryMiB: 256, cpus: 1 };
    const missing = new VmHost({
      config: { ...config, kernel: join(dir, 'nope') },
      backend: new QemuBackend(),
      storeRoot: env.storeRoot,
    });
    try {
      await missing.start();
      assert.unreachable('started without a kernel');
    } catch (err) {
      assert.match((err as Error).message, /VM kernel .*nope is missing: run scripts\/build-vm-image.sh/);
    }
    const absent = new QemuBackend({ binary: join(dir, 'no-qemu') });
    assert.throws(() => absent.argv(config), /not installed: apt-get install qemu-system-x86/);
    // A "hypervisor" that opens the agent socket and never answers.
    const fake = join(dir, 'fake-qemu');
    writeFileSync(
      fake,
      `#!${process.execPath}\nconst a = process.argv; const i = a.indexOf('-chardev');\n` +
        `const path = /path=([^,]+)/.exec(a[i + 1])[1];\n` +
        `require('net').createServer(() => {}).listen(path);\n`,
    );
    chmodSync(fake, 0o755);
    const silent = new VmHost({
      config,
      backend: new QemuBackend({ binary: fake }),
      storeRoot: env.storeRoot,
      helloTimeoutMs: 500,
      log: () => undefined,
    });
    try {
      await silent.start();
      assert.unreachable('started without a hello');
    } catch (err) {
      assert.match((err as Error).message, /did not say hello within 500 ms/);
    }
    await silent.stopped;
    assert.equal(
      readdirSync(dir).filter((f) => f.endsWith('.sock')),
      [],
    );
    assert.is(spawnSync('pgrep', ['-f', fake]).status, 1, 'the fake hypervisor was stopped');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
