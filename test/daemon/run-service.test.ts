// The daemon's `strata run` service (src/daemon/run-service.ts) against a real daemon serving a
// temp store with the busybox image (Entrypoint ["/bin/sh", "-c"]: the command is one script),
// with real crun and runc. Driven through the native front end (native/build/Release/strata) as a
// user would, or over a raw socket speaking src/run/protocol.ts where the front end would
// never send what we want to see answered.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import {
  decodeRunMessages,
  encodeExited,
  encodeRunMessage,
  encodeRunRequest,
  parseExec,
  parseExit,
  type RunMessage,
} from '../../src/run/protocol.js';
import { RUN_USAGE } from '../../src/run/args.js';
import {
  assertRunsLeftNothing,
  dirEntries,
  closeDaemonEnv,
  eventually,
  leaseIds,
  openDaemonEnv,
  runCollect,
  served,
  servesNothing,
  type DaemonEnv,
  type Env,
  type RunResult,
} from '../integration/harness.js';

const repo = new URL('../../', import.meta.url).pathname;
const frontExe = join(repo, 'native/build/Release/strata');

let d: DaemonEnv;
let env: Env;
let runDir: string;

function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    STRATA_ROOT: env.storeRoot,
    STRATA_SOCKET: env.socket,
    STRATA_RUN_DIR: runDir,
    ...extra,
  };
}

/** The native front end with `args`, to its end. */
function strata(args: string[], extra: Record<string, string> = {}): Promise<RunResult> {
  return runCollect(frontExe, args, { env: cliEnv(extra) });
}

/** What a run request carries in its env fields for this test's store, socket and run dir. */
function requestEnv(extra: string[] = []): string[] {
  return [
    `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`,
    `STRATA_ROOT=${env.storeRoot}`,
    `STRATA_SOCKET=${env.socket}`,
    `STRATA_RUN_DIR=${runDir}`,
    ...extra,
  ];
}

async function assertNothingLeft(): Promise<void> {
  await assertRunsLeftNothing(d, runDir);
}

function useDaemonEnv(de: DaemonEnv): void {
  d = de;
  env = de.env;
  runDir = join(env.dir, 'rundir');
}

/** Runs fn against a daemon and store of its own, for a test whose failure could leave a root
 * served or a record behind: that must not fail the tests after it. */
async function isolated(fn: () => Promise<void>): Promise<void> {
  const shared = d;
  const own = await openDaemonEnv(['busybox']);
  useDaemonEnv(own);
  try {
    await fn();
  } finally {
    useDaemonEnv(shared);
    await closeDaemonEnv(own);
  }
}

/** A raw connection to the daemon: every message it sends, and whether it closed. */
class Raw {
  private buf: Buffer = Buffer.alloc(0);
  private readonly queue: RunMessage[] = [];
  private wake: (() => void) | null = null;
  /** Every byte the daemon sent (for answers that are not run messages at all). */
  bytes: Buffer = Buffer.alloc(0);
  /** Sent the moment a message with this verb arrives (as a front end in C would). */
  readonly replies = new Map<string, Buffer>();
  /** The daemon sent something that is not a run message. */
  garbled = false;
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (data: Buffer) => {
      this.bytes = Buffer.concat([this.bytes, data]);
      try {
        const { messages, rest } = decodeRunMessages(Buffer.concat([this.buf, data]));
        this.buf = rest;
        this.queue.push(...messages);
        for (const m of messages) {
          const answer = this.replies.get(m.verb);
          if (answer) socket.write(answer);
        }
      } catch {
        this.garbled = true; // not a run message: the test looks at `bytes`
      }
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => undefined); // seen as the close that follows
  }

  static async open(): Promise<Raw> {
    const socket = connect(env.socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new Raw(socket);
  }

  send(data: Buffer | string): void {
    this.socket.write(data);
  }

  /** The next message, or null once the daemon closed the connection (or after ms). */
  async next(ms = 15_000): Promise<RunMessage | null> {
    const until = Date.now() + ms;
    while (this.queue.length === 0 && !this.closed && !this.garbled && Date.now() < until) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, until - Date.now());
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.queue.shift() ?? null;
  }

  /** True once the daemon has closed the connection (within ms). */
  async closes(ms = 5000): Promise<boolean> {
    return eventually(() => this.closed, ms);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Sends `data` as the whole conversation; expects one "exit" with 125, then the close. */
async function expectRefusal(data: Buffer | string, message: RegExp): Promise<void> {
  const raw = await Raw.open();
  try {
    raw.send(data);
    const msg = await raw.next();
    assert.ok(
      msg,
      `an answer to ${JSON.stringify(data.toString())}; got ${JSON.stringify(raw.bytes.toString())}`,
    );
    assert.is(msg.verb, 'exit');
    const exit = parseExit(msg);
    assert.is(exit.code, 125, exit.message);
    assert.match(exit.message, message);
    assert.ok(await raw.closes(), 'the daemon closes the connection');
  } finally {
    raw.destroy();
  }
}

test.before(async () => {
  useDaemonEnv(await openDaemonEnv(['busybox']));
});

test.after(() => closeDaemonEnv(d));

test('native front end, crun (the default): output and exit code pass through; --rm leaves nothing', async () => {
  const r = await strata(['run', '--rm', 'busybox', 'echo hi; exit 3']);
  assert.equal([r.code, r.stdout, r.stderr], [3, 'hi\n', '']);
  assert.ok(existsSync(join(runDir, 'crun')), 'crun ran it (its state root exists)');
  await assertNothingLeft();
});

test('native front end, --runtime runc: output and exit code pass through; --rm leaves nothing', async () => {
  const r = await strata(['run', '--rm', '--runtime', 'runc', 'busybox', 'echo hi; exit 3']);
  assert.equal([r.code, r.stdout, r.stderr], [3, 'hi\n', '']);
  assert.ok(existsSync(join(runDir, 'runc')), 'runc ran it (its state root exists)');
  await assertNothingLeft();
});

test('without --rm the record stays with its exit code until strata rm', async () => {
  const r = await strata(['run', '--name', 'kept', 'busybox', 'echo kept; exit 4']);
  assert.equal([r.code, r.stdout], [4, 'kept\n'], r.stderr);
  const ps = await strata(['ps', '-a', '--json']);
  assert.is(ps.code, 0, ps.stderr);
  const rows = JSON.parse(ps.stdout) as { id: string; name: string; status: string; exitCode?: number }[];
  assert.equal(
    rows.map((c) => [c.name, c.status, c.exitCode]),
    [['kept', 'exited', 4]],
  );
  const record = JSON.parse(readFileSync(join(runDir, 'containers', rows[0].id, 'state.json'), 'utf8')) as {
    exitCode?: number;
    ownerPid?: number;
    finishedAt?: string;
  };
  assert.is(record.exitCode, 4);
  assert.is(record.ownerPid, undefined, 'nobody owns an ended container');
  assert.ok(record.finishedAt);
  assert.ok(await servesNothing(env), 'its root is released although the record stays');
  const rm = await strata(['rm', 'kept']);
  assert.is(rm.code, 0, rm.stderr);
  await assertNothingLeft();
});

test('front end SIGKILLed mid-run: the container finishes, the daemon cleans up after it', () =>
  isolated(async () => {
    const out = join(env.dir, 'out-kill');
    mkdirSync(out);
    chmodSync(out, 0o777); // the image's user is not root
    const child = spawn(
      frontExe,
      ['run', '--rm', '-v', `${out}:/out`, 'busybox', 'echo started > /out/a; sleep 1; echo done > /out/x'],
      { env: cliEnv(), stdio: 'ignore' },
    );
    const exited = new Promise<string | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    try {
      assert.ok(await eventually(() => existsSync(join(out, 'a')), 10_000), 'the container started');
      assert.is(dirEntries(join(runDir, 'containers')).length, 1, 'its record exists while it runs');
    } finally {
      child.kill('SIGKILL');
    }
    assert.is(await exited, 'SIGKILL');
    assert.ok(
      await eventually(() => existsSync(join(out, 'x')), 5000),
      'the runtime (its own process group) was not killed with the front end: the container finished',
    );
    assert.is(readFileSync(join(out, 'x'), 'utf8'), 'done\n');
    assert.ok(
      await eventually(() => dirEntries(join(runDir, 'containers')).length === 0, 5000),
      'the daemon saw the runtime end through its pid and removed the --rm record',
    );
    await assertNothingLeft();
  }));

test('SIGTERM to the front end reaches the container; its exit code comes back', async () => {
  const child = spawn(
    frontExe,
    [
      'run',
      '--rm',
      'busybox',
      'trap "echo got-term; exit 42" TERM; echo ready; while true; do sleep 0.1; done',
    ],
    { env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  child.stdout.on('data', (b: Buffer) => {
    stdout += b.toString();
    if (stdout === 'ready\n') child.kill('SIGTERM');
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  clearTimeout(timer);
  assert.equal([code, stdout], [42, 'ready\ngot-term\n'], stderr);
  await assertNothingLeft();
});

test('protocol errors on a raw socket: "exit" 125 with the reason, then the connection closes', async () => {
  await expectRefusal('run garbage\n', /strata: malformed run message: bad header line/);
  await expectRefusal(`run ${(1 << 20) + 1}\n`, /run message too large/);
  await expectRefusal(encodeRunMessage('run', ['7', '/', '0']), /speaks run protocol 1, the front end "7"/);
  await expectRefusal(encodeRunMessage('run', ['1', 'relative', '0']), /bad cwd or argument count/);
  // A well-formed request with an option strata refuses: the same answer, the parser's reason.
  await expectRefusal(
    encodeRunRequest({ cwd: '/', argv: ['--network', 'bridge', 'busybox'], env: requestEnv() }),
    /--network "bridge": use none or host/,
  );
  await assertNothingLeft();
});

test('a first message that is not "run", and "exited" before anything started, are refused', async () => {
  for (const first of [
    encodeRunMessage('started', ['1234']),
    encodeExited({ kind: 'code', value: 0 }),
    encodeRunMessage('exec', ['--', '/bin/true']),
  ]) {
    const raw = await Raw.open();
    try {
      raw.send(first);
      const msg = await raw.next(5000);
      assert.ok(
        msg,
        `a run-protocol answer to ${JSON.stringify(first.toString())}; the daemon sent ` +
          `${JSON.stringify(raw.bytes.toString())} (closed: ${raw.closed})`,
      );
      assert.is(msg.verb, 'exit');
      assert.is(parseExit(msg).code, 125);
      assert.match(parseExit(msg).message, /expected a run request first/);
      assert.ok(await raw.closes(), 'the daemon closes the connection');
    } finally {
      raw.destroy();
    }
  }
  await assertNothingLeft();
});

test('an unexpected message during a run ends it with 125 and cleans the container up', () =>
  isolated(async () => {
    const raw = await Raw.open();
    try {
      raw.send(encodeRunRequest({ cwd: '/', argv: ['--rm', 'busybox', 'true'], env: requestEnv() }));
      const exec = await raw.next();
      assert.is(exec?.verb, 'exec');
      raw.send(encodeRunMessage('run', ['1', '/', '0']));
      const exit = await raw.next();
      assert.is(exit?.verb, 'exit');
      assert.equal(parseExit(exit as RunMessage).code, 125);
      assert.match(parseExit(exit as RunMessage).message, /unexpected "run" message during a run/);
      assert.ok(await raw.closes(), 'the daemon closes the connection');
    } finally {
      raw.destroy();
    }
    assert.ok(
      await eventually(() => dirEntries(join(runDir, 'containers')).length === 0, 5000),
      'the record is removed once the front end is gone',
    );
    await assertNothingLeft();
  }));

test('--help, -d and another socket answer "fallback"; the front end then runs the Node CLI', async () => {
  for (const argv of [
    ['--help'],
    ['-d', 'busybox', 'true'],
    ['--socket', join(env.dir, 'elsewhere.sock'), '--rm', 'busybox', 'true'],
  ]) {
    const raw = await Raw.open();
    try {
      raw.send(encodeRunRequest({ cwd: '/', argv, env: requestEnv() }));
      const msg = await raw.next();
      assert.equal(msg, { verb: 'fallback', fields: [] }, `fallback for ${argv.join(' ')}`);
      assert.ok(await raw.closes(), 'the daemon closes the connection');
    } finally {
      raw.destroy();
    }
  }
  const help = await strata(['run', '--help']);
  assert.equal([help.code, help.stdout], [0, RUN_USAGE], help.stderr);
  await assertNothingLeft();
});

test('a request naming another store (STRATA_ROOT): 125 naming both stores, nothing created', async () => {
  const other = join(env.dir, 'other-store');
  const r = await strata(['run', '--rm', 'busybox', 'echo ran'], { STRATA_ROOT: other });
  assert.is(r.code, 125, r.stderr);
  assert.is(r.stdout, '', 'the command never ran');
  assert.match(r.stderr, `the daemon on ${env.socket} serves the store ${env.storeRoot}, not ${other}`);
  assert.not.ok(existsSync(other), 'the other store was not created');
  assert.equal(dirEntries(join(runDir, 'containers')), [], 'no record');
  await assertNothingLeft();
});

/** Sends a run request for a named container and waits for the exec; returns the record's id. */
async function requestRun(raw: Raw, name: string): Promise<string> {
  raw.send(encodeRunRequest({ cwd: '/', argv: ['--name', name, 'busybox', 'echo ran'], env: requestEnv() }));
  const exec = await raw.next();
  assert.is(exec?.verb, 'exec', JSON.stringify(exec));
  const x = parseExec(exec as RunMessage);
  const id = x.argv[x.argv.length - 1];
  assert.ok(existsSync(join(runDir, 'containers', id, 'state.json')), 'the record exists');
  return id;
}

async function expectEarlyEnd(raw: Raw): Promise<void> {
  const exit = await raw.next();
  assert.is(exit?.verb, 'exit');
  assert.equal(parseExit(exit as RunMessage), { code: 130, message: '' });
  assert.ok(await raw.closes(), 'the daemon closes the connection');
  assert.equal(dirEntries(join(runDir, 'containers')), [], 'the record is removed (even without --rm)');
  assert.equal(dirEntries(join(runDir, 'names')), [], 'the name is free again');
  assert.ok(await servesNothing(env), 'the prepared root is released');
  assert.equal(await leaseIds(env), [], 'its lease is released');
}

test('"exited" ["early", 2] once the root is prepared: record removed, root released, 130', async () => {
  const raw = await Raw.open();
  try {
    const id = await requestRun(raw, 'early-prepared');
    assert.ok(
      await eventually(async () => (await served(env)).some((c) => c.id === id && c.state === 'prepared')),
      'the root is prepared ahead of the runtime',
    );
    raw.send(encodeExited({ kind: 'early', value: 2 }));
    await expectEarlyEnd(raw);
  } finally {
    raw.destroy();
  }
  await assertNothingLeft();
});

test('"exited" ["early", 2] the moment "exec" arrives: record removed, root released, 130', () =>
  isolated(async () => {
    const raw = await Raw.open();
    try {
      // What the native front end does when a ^C is pending: answer the exec at once, while the
      // daemon is still preparing the root it started preparing just before sending the exec.
      raw.replies.set('exec', encodeExited({ kind: 'early', value: 2 }));
      raw.send(
        encodeRunRequest({
          cwd: '/',
          argv: ['--name', 'early-at-once', 'busybox', 'true'],
          env: requestEnv(),
        }),
      );
      assert.is((await raw.next())?.verb, 'exec');
      await expectEarlyEnd(raw);
    } finally {
      raw.destroy();
    }
    await assertNothingLeft();
  }));

test.run();
