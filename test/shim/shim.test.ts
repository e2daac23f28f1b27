// containerd-shim-strata-v2 with a real containerd (private config, `ctr --address`): the shim
// binary on PATH starts the strata daemon, which serves containerd's Task service over ttrpc.
// Every test checks what a user sees (output, exit codes, task states) and that nothing is left:
// mounts, tasks, runc state, leases, processes under the daemon.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { TtrpcClient } from '../../src/ttrpc/client.js';
import { Code, TtrpcError } from '../../src/ttrpc/status.js';
import { encodeFrame, HEADER_LENGTH, MAX_MESSAGE_LENGTH } from '../../src/ttrpc/frame.js';
import {
  CreateTaskRequestSchema,
  CreateTaskResponseSchema,
  DeleteRequestSchema,
  DeleteResponseSchema,
  StartRequestSchema,
  StartResponseSchema,
  StateRequestSchema,
  StateResponseSchema,
  WaitRequestSchema,
  WaitResponseSchema,
  KillRequestSchema,
  CheckpointTaskRequestSchema,
} from '../../src/proto/generated/github.com/containerd/containerd/runtime/v2/task/shim_pb.js';
import { EmptySchema } from '@bufbuild/protobuf/wkt';
import { Status } from '../../src/proto/generated/github.com/containerd/containerd/api/types/task/task_pb.js';
import { eventually, isAlive, leaseIds, type Env } from '../integration/harness.js';
import {
  assertRootsReleased,
  childrenOf,
  closeShimTests,
  daemonPid,
  IMAGE,
  openShimTests,
  RUNTIME,
  type Containerd,
} from './containerd.js';

const TASK = 'containerd.task.v2.Task';
const NS = { 'containerd-namespace-ttrpc': 'strata-test' };

let env: Env;
let ctd: Containerd;
let mountsBefore: string[];

test.before(async () => {
  ({ env, ctd, mountsBefore } = await openShimTests());
});

test.after(() => closeShimTests(env, async () => ctd?.stop()));

/** Nothing of a finished task left: no mount, no runc state, no lease, no child of the daemon. */
async function assertNothingLeft(): Promise<void> {
  await assertRootsReleased(env, mountsBefore);
  const runcRoot = join(env.dir, 'run', 'shim', 'default', 'runc');
  assert.equal(existsSync(runcRoot) ? readdirSync(runcRoot) : [], [], 'no runc state');
  const tasks = join(env.dir, 'run', 'shim', 'default', 'tasks');
  assert.equal(existsSync(tasks) ? readdirSync(tasks) : [], [], 'no task state');
  const pid = await daemonPid(env);
  if (pid)
    assert.ok(
      await eventually(() => childrenOf(pid).length === 0),
      `daemon children: ${childrenOf(pid).join(' ')}`,
    );
  const listed = await ctd.ctr(['task', 'ls', '-q']);
  assert.is(listed.stdout.trim(), '', 'containerd lists no task');
  // containerd removes a bundle's rootfs with rmdir: runc's mount points in a strata-served root's
  // directory must be gone by then, or the next task of the same id cannot start.
  assert.equal(ctd.harness.bundlesLeft(), [], 'no task bundle left in containerd state');
}

/** The root line of a container's /proc/self/mountinfo (print it with ROOT_LINE). */
const ROOT_LINE = `grep " / / " /proc/self/mountinfo`;

/** Asserts `out` holds a mountinfo root line of strata's root, not containerd's snapshot. */
function assertStrataRoot(out: string, what: string): void {
  const line = out.split('\n').find((l) => / \/ \/ /.test(l));
  assert.ok(line, `${what}: a root line in ${JSON.stringify(out)}`);
  // strata's writable overlay (source "strata") on its detached FUSE mount, or the FUSE mount
  // itself; containerd's snapshot is an overlay with source "overlay" and lowerdirs on the host.
  assert.match(line, / - (overlay|fuse(\.\S+)?) strata /, `${what}: the root is strata's: ${line}`);
}

/** The daemon's log says it served task `id`'s root (set up from containerd's image). */
function assertServedByStrata(id: string): void {
  assert.match(
    readFileSync(env.logFile, 'utf8'),
    new RegExp(`task default/${id}: created \\(pid \\d+, root served by strata\\)`),
    `task ${id}: root served by strata`,
  );
}

test("ctr run --rm: output and exit code; the root is containerd's image, imported and served by strata", async () => {
  const r = await ctd.ctr([
    'run',
    '--rm',
    '--runtime',
    RUNTIME,
    IMAGE,
    'rm1',
    'sh',
    '-c',
    `echo out; echo err >&2; ${ROOT_LINE} >&2; exit 7`,
  ]);
  assert.is(r.stdout.trim(), 'out');
  assertStrataRoot(r.stderr, 'rm1');
  assert.match(r.stderr, /err/);
  assert.is(r.exitCode, 7);
  assert.ok(existsSync(env.logFile), 'the shim started the daemon with the store env');
  await assertNothingLeft();
});

test('ctr run --rm with org.strata.image: the root is served by strata (FUSE), not the snapshot', async () => {
  const r = await ctd.ctr([
    'run',
    '--rm',
    '--runtime',
    RUNTIME,
    '--annotation',
    'org.strata.image=busybox',
    IMAGE,
    'rm2',
    'sh',
    '-c',
    'grep " / " /proc/self/mountinfo; cat /etc/hostname >/dev/null; echo done',
  ]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /strata/, "the root mount is strata's FUSE or its overlay");
  assert.match(r.stdout, /done/);
  await assertNothingLeft();
});

// ctr writes its input and closes the fifo; its CloseIO usually never comes (ctr sets it up only
// after the task is created, when its copy has long seen EOF): the writer's end is stdin's end.
test('stdin reaches the container and its end is seen', async () => {
  const r = await ctd.ctr(
    ['run', '--rm', '--runtime', RUNTIME, IMAGE, 'in1', 'sh', '-c', `cat; echo END; ${ROOT_LINE} >&2`],
    {
      input: 'line one\nline two\n',
    },
  );
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stdout, 'line one\nline two\nEND\n'); // the harness's ctr() keeps the output whole
  assertStrataRoot(r.stderr, 'in1');
  await assertNothingLeft();
});

test('several runs in a row on a strata-served root (a stuck stdin open once hung the 4th)', async () => {
  for (let i = 0; i < 5; i++) {
    const r = await ctd.ctr(
      [
        'run',
        '--rm',
        '--runtime',
        RUNTIME,
        '--annotation',
        'org.strata.image=busybox',
        IMAGE,
        `row${i}`,
        'sh',
        '-c',
        `echo run-${i}; grep SigIgn /proc/self/status; exit ${i}`,
      ],
      { timeoutMs: 30_000 },
    );
    // runc is started with posix_spawn: the container's process still ignores no signal.
    assert.is(r.stdout.trim(), `run-${i}\nSigIgn:\t0000000000000000`, `run ${i}: ${r.stderr}`);
    assert.is(r.exitCode, i);
  }
  await assertNothingLeft();
});

/** A logging binary (containerd's binary:// protocol): fd 3 → DIR/out, fd 4 → DIR/err, then ready. */
function writeLogger(dir: string): string {
  const logger = join(dir, 'logger.sh');
  writeFileSync(
    logger,
    [
      '#!/bin/sh',
      'd="$2"', // args: "dir" DIR
      'echo "$CONTAINER_NAMESPACE/$CONTAINER_ID" > "$d/who"',
      'cat <&3 > "$d/out" 4<&- 5>&- & cat <&4 > "$d/err" 3<&- 5>&- &',
      'exec 3<&- 4<&- 5>&-',
      'wait',
    ].join('\n'),
    { mode: 0o755 },
  );
  return logger;
}

test('ctr run --log-uri binary:// and file://, as the runc shim does them', async () => {
  for (const [runtime, tag] of [
    ['io.containerd.runc.v2', 'runc'],
    [RUNTIME, 'strata'],
  ]) {
    const dir = join(env.dir, `logs-${tag}`);
    mkdirSync(dir, { recursive: true });
    const logger = writeLogger(dir);
    const b = await ctd.ctr([
      'run',
      '--rm',
      '--runtime',
      runtime,
      '--log-uri',
      `binary://${logger}?dir=${encodeURIComponent(dir)}`,
      IMAGE,
      `lb-${tag}`,
      'sh',
      '-c',
      'echo to-out; echo to-err >&2; exit 3',
    ]);
    assert.is(b.exitCode, 3, `${tag}: ${b.stderr}`);
    if (runtime === RUNTIME) assertServedByStrata(`lb-${tag}`);
    assert.ok(
      await eventually(
        () => existsSync(join(dir, 'out')) && readFileSync(join(dir, 'out'), 'utf8') === 'to-out\n',
      ),
      `${tag}: stdout reached the logger`,
    );
    assert.ok(await eventually(() => readFileSync(join(dir, 'err'), 'utf8') === 'to-err\n'), tag);
    assert.is(readFileSync(join(dir, 'who'), 'utf8'), `default/lb-${tag}\n`);

    const log = join(dir, 'file', 'task.log');
    for (const word of ['one', 'two']) {
      const f = await ctd.ctr([
        'run',
        '--rm',
        '--runtime',
        runtime,
        '--log-uri',
        `file://${log}`,
        IMAGE,
        `lf-${tag}`,
        'sh',
        '-c',
        `echo ${word}-out; echo ${word}-err >&2`,
      ]);
      assert.is(f.exitCode, 0, `${tag}: ${f.stderr}`);
    }
    if (runtime === RUNTIME) assertServedByStrata(`lf-${tag}`);
    assert.ok(
      await eventually(() => existsSync(log) && readFileSync(log, 'utf8').split('\n').length === 5),
      `${tag}: ${existsSync(log) ? JSON.stringify(readFileSync(log, 'utf8')) : 'no log'}`,
    );
    assert.equal(readFileSync(log, 'utf8').trim().split('\n').sort(), [
      'one-err',
      'one-out',
      'two-err',
      'two-out',
    ]);
  }
  await assertNothingLeft();
});

test('ctr run -t under a pty: a terminal inside, output back', async () => {
  const r = await execa(
    'script',
    [
      '-qec',
      `ctr --address ${ctd.address} run --rm -t --runtime ${RUNTIME} ${IMAGE} tty1 sh -c 'tty; ${ROOT_LINE}; exit 4'`,
      '/dev/null',
    ],
    { reject: false, env: ctd.env, timeout: 60_000, stdin: 'ignore' },
  );
  assert.match(r.stdout, /\/dev\/pts\/\d+/);
  assertStrataRoot(r.stdout.replace(/\r/g, ''), 'tty1');
  assert.is(r.exitCode, 4, r.stdout + r.stderr);
  await assertNothingLeft();
});

test('ctr task exec, ps, pause/resume, metrics, kill on a detached task', async () => {
  const run = await ctd.ctr(['run', '-d', '--runtime', RUNTIME, IMAGE, 'd1', 'sleep', '300']);
  assert.is(run.exitCode, 0, run.stderr);
  try {
    const ex = await ctd.ctr([
      'task',
      'exec',
      '--exec-id',
      'e1',
      'd1',
      'sh',
      '-c',
      `echo in-exec; ${ROOT_LINE} >&2; exit 5`,
    ]);
    assert.is(ex.stdout.trim(), 'in-exec');
    assertStrataRoot(ex.stderr, 'd1 (exec)');
    assert.is(ex.exitCode, 5);
    const ps = await ctd.ctr(['task', 'ps', 'd1']);
    assert.is(ps.exitCode, 0, ps.stderr);
    assert.ok(ps.stdout.trim().split('\n').length >= 2, ps.stdout);
    assert.is((await ctd.ctr(['task', 'pause', 'd1'])).exitCode, 0);
    assert.match((await ctd.ctr(['task', 'ls'])).stdout, /d1\s+\d+\s+PAUSED/);
    assert.is((await ctd.ctr(['task', 'resume', 'd1'])).exitCode, 0);
    assert.match((await ctd.ctr(['task', 'ls'])).stdout, /d1\s+\d+\s+RUNNING/);
    const m = await ctd.ctr(['task', 'metrics', 'd1']);
    assert.is(m.exitCode, 0, m.stderr);
    assert.match(m.stdout, /memory|pids/i);
    assert.is((await ctd.ctr(['task', 'kill', '-s', 'SIGKILL', 'd1'])).exitCode, 0);
    assert.ok(await eventually(async () => /STOPPED/.test((await ctd.ctr(['task', 'ls'])).stdout), 10_000));
    // Kill of an exited task succeeds (CRI relies on it).
    assert.is((await ctd.ctr(['task', 'kill', '-s', 'SIGKILL', 'd1'])).exitCode, 0);
  } finally {
    await ctd.ctr(['task', 'delete', '--force', 'd1']);
    await ctd.ctr(['container', 'delete', 'd1']);
  }
  await assertNothingLeft();
});

// ---- faults, straight to the daemon's ttrpc ----

function bundleFor(id: string, args: string[]): string {
  const b = join(env.dir, 'bundles', id);
  mkdirSync(join(b, 'rootfs'), { recursive: true });
  writeFileSync(
    join(b, 'config.json'),
    JSON.stringify({
      ociVersion: '1.0.2',
      process: { args, cwd: '/', env: ['PATH=/bin'], user: { uid: 0, gid: 0 } },
      root: { path: 'rootfs' },
      annotations: { 'org.strata.image': 'busybox' },
      linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }] },
      mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
    }),
  );
  return b;
}

async function code(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return Code.OK;
  } catch (err) {
    if (err instanceof TtrpcError) return err.code;
    throw err;
  }
}

test('faults: unknown task, Start before Create, Create twice, Delete while running, Checkpoint, a dead init started', async () => {
  assert.ok(await daemonPid(env), 'the daemon runs (started by the shim)');
  const c = await TtrpcClient.connect(env.socket);
  const call = <I extends Parameters<TtrpcClient['call']>[2], O extends Parameters<TtrpcClient['call']>[4]>(
    method: string,
    input: I,
    req: Parameters<TtrpcClient['call']>[3],
    output: O,
  ) => c.call(TASK, method, input, req as never, output, { metadata: NS, timeoutMs: 30_000 });
  try {
    assert.is(
      await code(call('State', StateRequestSchema, { id: 'nope' }, StateResponseSchema)),
      Code.NotFound,
    );
    assert.is(
      await code(call('Start', StartRequestSchema, { id: 'nope' }, StartResponseSchema)),
      Code.NotFound,
    );
    assert.is(
      await code(
        call(
          'Create',
          CreateTaskRequestSchema,
          { id: 'bad', bundle: join(env.dir, 'no-bundle') },
          CreateTaskResponseSchema,
        ),
      ),
      Code.NotFound,
      'a bundle without config.json',
    );
    assert.is(
      await code(
        call('Create', CreateTaskRequestSchema, { id: '../x', bundle: env.dir }, CreateTaskResponseSchema),
      ),
      Code.InvalidArgument,
    );
    const b = bundleFor('f1', ['sleep', '300']);
    const created = await call(
      'Create',
      CreateTaskRequestSchema,
      { id: 'f1', bundle: b },
      CreateTaskResponseSchema,
    );
    assert.ok(created.pid > 1);
    assert.is(
      await code(call('Create', CreateTaskRequestSchema, { id: 'f1', bundle: b }, CreateTaskResponseSchema)),
      Code.AlreadyExists,
    );
    // Wait long-polls on the same connection while Start arrives: requests are not serialised.
    const waited = call('Wait', WaitRequestSchema, { id: 'f1' }, WaitResponseSchema);
    await call('Start', StartRequestSchema, { id: 'f1' }, StartResponseSchema);
    const st = await call('State', StateRequestSchema, { id: 'f1' }, StateResponseSchema);
    assert.is(st.status, Status.RUNNING);
    assert.is(
      await code(call('Delete', DeleteRequestSchema, { id: 'f1' }, DeleteResponseSchema)),
      Code.FailedPrecondition,
    );
    assert.is(
      await code(call('Checkpoint', CheckpointTaskRequestSchema, { id: 'f1', path: '/tmp/x' }, EmptySchema)),
      Code.Unimplemented,
    );
    await call('Kill', KillRequestSchema, { id: 'f1', signal: 9 }, EmptySchema);
    const w = await waited;
    assert.is(w.exitStatus, 137);
    await call('Kill', KillRequestSchema, { id: 'f1', signal: 9 }, EmptySchema); // exited: still fine
    const del = await call('Delete', DeleteRequestSchema, { id: 'f1' }, DeleteResponseSchema);
    assert.is(del.exitStatus, 137);
    assert.is(
      await code(call('State', StateRequestSchema, { id: 'f1' }, StateResponseSchema)),
      Code.NotFound,
    );

    // Start reads runc's exec fifo itself: an init killed before Start is an error, not a hang.
    const b2 = bundleFor('f2', ['true']);
    const c2 = await call(
      'Create',
      CreateTaskRequestSchema,
      { id: 'f2', bundle: b2 },
      CreateTaskResponseSchema,
    );
    process.kill(c2.pid, 'SIGKILL');
    const t0 = Date.now();
    assert.is(
      await code(call('Start', StartRequestSchema, { id: 'f2' }, StartResponseSchema)),
      Code.FailedPrecondition,
    );
    assert.ok(Date.now() - t0 < 10_000, 'Start of a dead init answers at once');
    const del2 = await call('Delete', DeleteRequestSchema, { id: 'f2' }, DeleteResponseSchema);
    assert.is(del2.exitStatus, 137);
  } finally {
    c.close();
  }
  assert.ok(await eventually(async () => (await leaseIds(env)).length === 0), 'the strata root was released');
});

test('faults: oversized and malformed frames, a client gone mid-Wait; the daemon keeps serving', async () => {
  const s = connect(env.socket);
  await new Promise((r) => s.once('connect', r));
  const got: Buffer[] = [];
  s.on('data', (d: Buffer) => got.push(d));
  const over = Buffer.alloc(HEADER_LENGTH);
  over.writeUInt32BE(MAX_MESSAGE_LENGTH + 1, 0);
  over.writeUInt32BE(1, 4);
  over[8] = 1;
  s.write(over);
  s.write(Buffer.alloc(MAX_MESSAGE_LENGTH + 1));
  s.write(encodeFrame(3, 1, Buffer.from([0xff, 0xff])));
  assert.ok(
    await eventually(() => Buffer.concat(got).length >= 2 * HEADER_LENGTH, 10_000),
    'two error responses',
  );
  s.destroy();

  // A Wait on a running task, then the client vanishes: the task and the daemon are unaffected.
  const c1 = await TtrpcClient.connect(env.socket);
  const b = bundleFor('f2', ['sleep', '300']);
  await c1.call(TASK, 'Create', CreateTaskRequestSchema, { id: 'f2', bundle: b }, CreateTaskResponseSchema, {
    metadata: NS,
  });
  await c1.call(TASK, 'Start', StartRequestSchema, { id: 'f2' }, StartResponseSchema, { metadata: NS });
  void c1
    .call(TASK, 'Wait', WaitRequestSchema, { id: 'f2' }, WaitResponseSchema, { metadata: NS })
    .catch(() => undefined);
  await new Promise((r) => setTimeout(r, 50));
  c1.close();
  const c2 = await TtrpcClient.connect(env.socket);
  try {
    const st = await c2.call(TASK, 'State', StateRequestSchema, { id: 'f2' }, StateResponseSchema, {
      metadata: NS,
    });
    assert.is(st.status, Status.RUNNING);
    await c2.call(TASK, 'Kill', KillRequestSchema, { id: 'f2', signal: 9 }, EmptySchema, { metadata: NS });
    const w = await c2.call(TASK, 'Wait', WaitRequestSchema, { id: 'f2' }, WaitResponseSchema, {
      metadata: NS,
    });
    assert.is(w.exitStatus, 137);
    await c2.call(TASK, 'Delete', DeleteRequestSchema, { id: 'f2' }, DeleteResponseSchema, { metadata: NS });
  } finally {
    c2.close();
  }
  // And containerd's tasks still run through it.
  const r = await ctd.ctr(['run', '--rm', '--runtime', RUNTIME, IMAGE, 'after', 'echo', 'still-serving']);
  assert.is(r.stdout.trim(), 'still-serving');
  await assertNothingLeft();
});

test('the shim binary: delete is idempotent and reports the real status; start prints only the address', async () => {
  const shim = join(ctd.dir, 'bin', 'containerd-shim-strata-v2');
  const r = await ctd.ctr(['run', '--rm', '--runtime', RUNTIME, IMAGE, 'sd1', 'sh', '-c', 'exit 9']);
  assert.is(r.exitCode, 9);
  // containerd ran `delete` already; again, by hand: the same answer, the real exit status.
  const del = await execa(
    shim,
    ['-namespace', 'default', '-id', 'sd1', '-bundle', '/nonexistent', 'delete'],
    {
      env: ctd.env,
      encoding: 'buffer',
      reject: false,
    },
  );
  assert.is(del.exitCode, 0, String(del.stderr));
  const res = DeleteResponseSchema;
  const { fromBinary } = await import('@bufbuild/protobuf');
  assert.is(fromBinary(res, del.stdout as Uint8Array).exitStatus, 9);
  const unknown = await execa(shim, ['-namespace', 'default', '-id', 'never-was', 'delete'], {
    env: ctd.env,
    encoding: 'buffer',
    reject: false,
    cwd: env.dir,
  });
  assert.is(unknown.exitCode, 0, String(unknown.stderr));
  assert.is(fromBinary(res, unknown.stdout as Uint8Array).exitStatus, 137);

  const bundle = join(env.dir, 'bundles', 'start1');
  mkdirSync(bundle, { recursive: true });
  const start = await execa(
    shim,
    ['-namespace', 'default', '-address', ctd.address, '-id', 'start1', 'start'],
    {
      env: { ...ctd.env, TTRPC_ADDRESS: `${ctd.address}.ttrpc` },
      cwd: bundle,
      all: true,
      reject: false,
    },
  );
  assert.is(start.exitCode, 0);
  assert.is(start.all, `unix://${env.socket}`, 'stdout+stderr hold the address alone');
});

test('the daemon leaves on SIGTERM after serving tasks, also one whose stdin fifo got no writer', async () => {
  // `ctr run` without input: ctr's own writer came and went before Create, so the stdin fifo never
  // sees one again. Nothing may wait on it.
  const r = await ctd.ctr(['run', '--rm', '--runtime', RUNTIME, IMAGE, 'last1', 'true']);
  assert.is(r.exitCode, 0, r.stderr);
  assertServedByStrata('last1');
  const pid = await daemonPid(env);
  assert.ok(pid, 'the daemon runs');
  process.kill(pid, 'SIGTERM');
  assert.ok(await eventually(() => !isAlive(pid), 10_000), `daemon ${pid} left within 10 s of SIGTERM`);
  assert.match(readFileSync(env.logFile, 'utf8'), /info stopped/);
});

test.run();
