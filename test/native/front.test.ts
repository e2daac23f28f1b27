// The native front end (native/front/strata.c) driven as a real process against a scripted
// daemon: a node:net server speaking src/run/protocol.ts, standing in for the daemon's
// run service. Each test runs `strata run ...` and checks both sides of the conversation.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test as uvuTest } from 'uvu';
import * as assert from 'uvu/assert';

import {
  decodeRunMessages,
  encodeExec,
  encodeExit,
  encodeRunMessage,
  parseExited,
  parseRunRequest,
  type ExecInstruction,
  type RunMessage,
} from '../../src/run/protocol.js';
import { frontExecutable } from '../../src/executables.js';
import { NATIVE_CONTRACT } from '../../src/contract/generated/native-contract.js';
import { RUN_USAGE } from '../../src/run/args.js';
import { CgroupNamespace } from '../../src/run/cgroup-ns.js';
import { findExecutable } from '../../src/run/runtime.js';
import { checkedTest } from '../fixtures/checked-test.js';
import { fdSnapshot, fdsLeftSince, waitFor } from './mini-fuse.js';

const repo = new URL('../../', import.meta.url).pathname;

/** One accepted connection: the messages the front end sent, in order, and a way to answer. */
class Conn {
  private buf: Buffer = Buffer.alloc(0);
  private readonly queue: RunMessage[] = [];
  private wake: (() => void) | null = null;
  private ended = false;
  constructor(readonly socket: Socket) {
    socket.on('data', (d) => {
      const { messages, rest } = decodeRunMessages(Buffer.concat([this.buf, d]));
      this.buf = rest;
      this.queue.push(...messages);
      this.wake?.();
    });
    socket.on('close', () => ((this.ended = true), this.wake?.()));
    socket.on('error', () => {});
  }
  /** The next message, or null once the front end has closed the connection. */
  async next(): Promise<RunMessage | null> {
    while (this.queue.length === 0 && !this.ended) await new Promise<void>((r) => (this.wake = r));
    return this.queue.shift() ?? null;
  }
  send(b: Buffer): void {
    this.socket.write(b);
  }
}

type Script = (c: Conn, front: FrontRun) => Promise<void>;
interface FrontRun {
  pid: number;
  stdout: string;
  stderr: string;
  done: Promise<{ code: number | null; signal: string | null }>;
  kill(sig: NodeJS.Signals): void;
}

/** Runs the front end with `args` against a daemon following `script` (or no daemon at all). */
async function frontWith(
  args: string[],
  script: Script | null,
  opts: { cwd?: string; env?: Record<string, string>; stdin?: string; exe?: string } = {},
) {
  const dir = mkdtempSync(join(tmpdir(), 'strata-front-'));
  const socketPath = join(dir, 'strata.sock');
  const server = createServer();
  let scriptDone: Promise<void> = Promise.resolve();
  let front: FrontRun | undefined;
  if (script) {
    server.on('connection', (s) => {
      scriptDone = script(new Conn(s), front!).finally(() => s.end());
    });
    await new Promise<void>((r) => server.listen(socketPath, r));
  }
  try {
    // An extra fd 3 (no O_CLOEXEC in the front end) that must not reach the runtime.
    const child = spawn(opts.exe ?? frontExecutable(), args, {
      cwd: opts.cwd ?? dir,
      env: { ...process.env, STRATA_SOCKET: socketPath, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    });
    child.stdin!.on('error', () => {}); // EPIPE when the front end exits without reading
    child.stdin!.end(opts.stdin ?? '');
    front = {
      pid: child.pid!,
      stdout: '',
      stderr: '',
      done: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal }))),
      kill: (sig) => child.kill(sig),
    };
    const f = front;
    child.stdout!.on('data', (d: Buffer) => (f.stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (f.stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20000);
    const end = await f.done;
    clearTimeout(timer);
    await scriptDone;
    return { ...end, stdout: f.stdout, stderr: f.stderr };
  } finally {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
}

const exec = (argv: string[], x: Partial<ExecInstruction> = {}) =>
  encodeExec({ argv, cwd: '/', stdin: 'null', pgrp: 'new', pidFile: '', ...x });

/** The usual conversation: exec `argv`, collect started and exited, answer exit(code, message). */
function execScript(
  argv: string[],
  x: Partial<ExecInstruction>,
  seen: RunMessage[],
  exit: [number, string],
): Script {
  return async (c) => {
    seen.push((await c.next())!);
    c.send(exec(argv, x));
    seen.push((await c.next())!, (await c.next())!);
    c.send(encodeExit(...exit));
  };
}

/** Our child processes (tsx keeps an esbuild service child of its own: compare, do not count). */
function childrenOfUs(): Set<string> {
  const kids = new Set<string>();
  for (const t of readdirSync('/proc/self/task')) {
    try {
      for (const pid of readFileSync(`/proc/self/task/${t}/children`, 'utf8').split(/\s+/))
        if (pid) kids.add(pid);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return kids;
}

// Every test ends with no child process and no fd left (checked inside the test, so a failure is
// never lost).
const test = checkedTest(
  uvuTest,
  () => ({ fds: fdSnapshot(), kids: childrenOfUs() }),
  async ({ fds, kids }) => {
    assert.equal(
      [...childrenOfUs()].filter((pid) => !kids.has(pid)),
      [],
      'no child process left',
    );
    await waitFor(() => fdsLeftSince(fds).length === 0, 10_000);
    assert.equal(fdsLeftSince(fds), [], 'no fd left open');
  },
);

// Directories tests make for a cwd or a copy; frontWith cleans up its own.
const scratch = mkdtempSync(join(tmpdir(), 'strata-front-scratch-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

test('the run message carries cwd, the arguments after run and the environment; exit ends it', async () => {
  const seen: RunMessage[] = [];
  const cwd = mkdtempSync(join(scratch, 'cwd-'));
  const r = await frontWith(
    ['run', '--rm', 'img', 'sh', '-c', 'echo "a b"', ''],
    async (c) => {
      seen.push((await c.next())!);
      c.send(encodeExit(3, 'no such image: img'));
    },
    { cwd, env: { STRATA_FRONT_TEST: 'x=y z' } },
  );
  const req = parseRunRequest(seen[0]);
  assert.is(req.cwd, cwd);
  assert.equal(req.argv, ['--rm', 'img', 'sh', '-c', 'echo "a b"', '']);
  assert.ok(req.env.includes('STRATA_FRONT_TEST=x=y z'));
  assert.ok(req.env.includes(`PATH=${process.env.PATH}`));
  assert.equal([r.code, r.stderr], [3, 'no such image: img\n']);
});

test('exec runs argv in cwd with stdin /dev/null; its code goes back, the exit code comes out', async () => {
  const seen: RunMessage[] = [];
  const cwd = mkdtempSync(join(scratch, 'cwd-'));
  const script = 'pwd; read x; echo "read=$? x=$x"; exit 7';
  const r = await frontWith(
    ['run', 'img'],
    execScript(['/bin/sh', '-c', script], { cwd }, seen, [9, 'done']),
    {
      stdin: 'hello\n',
    },
  );
  assert.equal(
    seen.map((m) => m.verb),
    ['run', 'started', 'exited'],
  );
  assert.match(seen[1].fields[0], /^[1-9]\d*$/);
  assert.equal(parseExited(seen[2]), { kind: 'code', value: 7 });
  assert.equal([r.code, r.stdout, r.stderr], [9, `${cwd}\nread=1 x=\n`, 'done\n']);

  // stdin=inherit: the runtime reads the front end's stdin; an empty message prints nothing.
  seen.length = 0;
  const r2 = await frontWith(
    ['run', 'img'],
    execScript(['/bin/sh', '-c', script], { cwd, stdin: 'inherit' }, seen, [7, '']),
    {
      stdin: 'hello\n',
    },
  );
  assert.equal([r2.code, r2.stdout, r2.stderr], [7, `${cwd}\nread=0 x=hello\n`, '']);
});

test('a runtime killed by a signal is reported as ["signal", N]', async () => {
  const seen: RunMessage[] = [];
  const r = await frontWith(
    ['run', 'img'],
    execScript(['/bin/sh', '-c', 'kill -KILL $$'], {}, seen, [137, '']),
  );
  assert.equal(parseExited(seen[2]), { kind: 'signal', value: 9 });
  assert.is(r.code, 137);
});

test('SIGTERM sent to the front end reaches the runtime', async () => {
  const seen: RunMessage[] = [];
  const script = 'trap "exit 42" TERM; echo ready; while :; do sleep 0.02; done';
  const r = await frontWith(['run', 'img'], async (c, front) => {
    seen.push((await c.next())!);
    c.send(exec(['/bin/sh', '-c', script]));
    seen.push((await c.next())!);
    assert.ok(await waitFor(() => front.stdout === 'ready\n', 5000), 'the runtime started');
    front.kill('SIGTERM');
    seen.push((await c.next())!);
    c.send(encodeExit(42, ''));
  });
  assert.equal(parseExited(seen[2]), { kind: 'code', value: 42 });
  assert.equal([r.code, r.signal], [42, null]);
});

test('pgrp=new gives the runtime its own process group; pgrp=same keeps ours', async () => {
  const argv = ['/bin/sh', '-c', 'cut -d" " -f5 /proc/$$/stat'];
  for (const pgrp of ['new', 'same'] as const) {
    const seen: RunMessage[] = [];
    const r = await frontWith(['run', 'img'], execScript(argv, { pgrp }, seen, [0, '']));
    const pid = seen[1].fields[0];
    if (pgrp === 'new') assert.is(r.stdout.trim(), pid);
    else assert.is(r.stdout.trim(), readFileSync('/proc/self/stat', 'utf8').split(' ')[4]);
  }
});

test("mntns= runs the runtime in that mount namespace (the daemon's cgroup2 one) only", async () => {
  // Only the mounts the namespace's own cgroup2 mount could show up as: other tests on this
  // machine mount and unmount elsewhere meanwhile.
  const cgroupMounts = () =>
    readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.split(' ')[4]?.startsWith('/sys/fs/cgroup'));
  const before = cgroupMounts();
  const ns = new CgroupNamespace(findExecutable('unshare')!);
  try {
    const seen: RunMessage[] = [];
    const argv = ['/usr/bin/stat', '-f', '-c', '%T', '/sys/fs/cgroup'];
    const r = await frontWith(
      ['run', 'img'],
      execScript(argv, { mntns: await ns.path(), cwd: '/tmp' }, seen, [0, '']),
    );
    assert.equal([r.code, r.stdout], [0, 'cgroup2fs\n']);
    assert.equal(cgroupMounts(), before, 'our mounts are unchanged');
  } finally {
    await ns.stop();
  }
});

test('a signal pending before exec: nothing starts, ["early", N] goes back', async () => {
  const seen: RunMessage[] = [];
  const dir = mkdtempSync(join(scratch, 'early-'));
  const r = await frontWith(['run', 'img'], async (c, front) => {
    seen.push((await c.next())!);
    front.kill('SIGINT');
    // Blocked, so pending in the front end (ShdPnd bit 1 is SIGINT).
    const pending = () =>
      /^ShdPnd:\s+([0-9a-f]+)/m.exec(readFileSync(`/proc/${front.pid}/status`, 'utf8'))![1];
    assert.ok(await waitFor(() => (parseInt(pending(), 16) & 2) !== 0, 5000), 'SIGINT is pending');
    c.send(exec(['/bin/touch', join(dir, 'started')]));
    seen.push((await c.next())!);
    c.send(encodeExit(130, ''));
  });
  assert.equal(parseExited(seen[1]), { kind: 'early', value: 2 });
  assert.not.ok(existsSync(join(dir, 'started')), 'the runtime never ran');
  assert.is(r.code, 130);
});

test('exec of a missing binary reports 127; only fds 0-2 reach the runtime', async () => {
  const seen: RunMessage[] = [];
  const r = await frontWith(['run', 'img'], execScript(['/nonexistent/runtime'], {}, seen, [127, '']));
  assert.equal(parseExited(seen[2]), { kind: 'code', value: 127 });
  assert.match(r.stderr, 'strata: cannot start /nonexistent/runtime: No such file or directory');

  // The front end was given an fd 3 (the spawn's extra pipe); find, as the runtime, /proc/PID/fd.
  seen.length = 0;
  const r2 = await frontWith(['run', 'img'], async (c, front) => {
    seen.push((await c.next())!);
    c.send(exec(['/bin/sleep', '5']));
    const pid = Number((await c.next())!.fields[0]);
    assert.ok(await waitFor(() => readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('/bin/sleep')));
    assert.equal(readdirSync(`/proc/${pid}/fd`).sort(), ['0', '1', '2']);
    front.kill('SIGTERM');
    seen.push((await c.next())!);
    c.send(encodeExit(143, ''));
  });
  assert.equal(parseExited(seen[1]), { kind: 'signal', value: 15 });
  assert.is(r2.code, 143);
});

const mainJs = join(repo, 'dist/src/cli/main.js');
const version = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version;

test('"fallback", a missing socket, and other commands run the Node CLI', async () => {
  assert.ok(existsSync(mainJs), `${mainJs} is missing: run npx tsc -p tsconfig.json first`);
  const fallback = await frontWith(['run', '--help'], async (c) => {
    await c.next();
    c.send(encodeRunMessage('fallback', []));
  });
  assert.equal([fallback.code, fallback.stdout], [0, RUN_USAGE]);
  const noDaemon = await frontWith(['run', '--help'], null);
  assert.equal([noDaemon.code, noDaemon.stdout], [0, RUN_USAGE]);
  const other = await frontWith(['--version'], null);
  assert.equal([other.code, other.stdout], [0, `${version}\n`]);
});

test('the Node CLI missing: the front end names the file it wants', async () => {
  const dir = mkdtempSync(join(scratch, 'copy-'));
  mkdirSync(join(dir, 'native/build/Release'), { recursive: true });
  copyFileSync(frontExecutable(), join(dir, 'native/build/Release/strata'));
  const r = await frontWith(['--version'], null, { exe: join(dir, 'native/build/Release/strata') });
  assert.is(r.code, 125);
  assert.is(r.stderr, `strata: ${dir}/dist/src/cli/main.js is missing; run \`npm run build\`\n`);
});

test('a daemon that closes the connection without answering: 125 and a message', async () => {
  const r = await frontWith(['run', 'img'], async (c) => {
    await c.next();
  });
  assert.is(r.code, 125);
  assert.match(r.stderr, 'the daemon closed the connection without answering');
});

test('a daemon lost after exec: the runtime still ends, its own status comes out', async () => {
  const r = await frontWith(['run', 'img'], async (c) => {
    await c.next();
    c.send(exec(['/bin/sh', '-c', 'sleep 0.2; exit 5']));
    await c.next();
    c.socket.destroy();
  });
  assert.is(r.code, 5);
  assert.match(r.stderr, "lost the daemon connection; the container's record may be stale (strata ps)");
});

test('a daemon lost before the container started (no pid file, the runtime failed): 125, "did not start"', async () => {
  const pidFile = join(scratch, 'never-written.pid');
  const r = await frontWith(['run', 'img'], async (c) => {
    await c.next();
    c.send(exec(['/bin/sh', '-c', 'sleep 0.2; exit 1'], { pidFile }));
    await c.next();
    c.socket.destroy();
  });
  assert.is(r.code, NATIVE_CONTRACT.exit.runFailed);
  assert.is(r.stderr, `strata: ${NATIVE_CONTRACT.run.lostBeforeStartMessage}\n`);
});

test("a daemon lost after the container started (its pid file exists): the runtime's status", async () => {
  const pidFile = join(scratch, 'written.pid');
  const r = await frontWith(['run', 'img'], async (c) => {
    await c.next();
    c.send(exec(['/bin/sh', '-c', `echo $$ > ${pidFile}; sleep 0.2; exit 3`], { pidFile }));
    await c.next();
    c.socket.destroy();
  });
  assert.is(r.code, 3);
  assert.match(r.stderr, NATIVE_CONTRACT.run.lostMessage);
});

const ID = 'c'.repeat(64);

test('a daemon lost during the run: the next one gets "resume" with the runtime pid, then its end, and names the exit code', async () => {
  let n = 0;
  const seen: RunMessage[] = [];
  const r = await frontWith(['run', 'img'], async (c) => {
    if (n++ === 0) {
      await c.next();
      c.send(exec(['/bin/sh', '-c', 'sleep 0.5; exit 5'], { id: ID, runDir: '/run/x' }));
      seen.push((await c.next())!); // started
      c.socket.destroy(); // kill -9
      return;
    }
    seen.push((await c.next())!, (await c.next())!);
    c.send(encodeExit(42, 'from the new daemon'));
  });
  assert.is(r.code, 42, r.stderr);
  assert.is(r.stderr, 'from the new daemon\n');
  assert.equal(
    seen.map((m) => m.verb),
    ['started', 'resume', 'exited'],
  );
  assert.equal(seen[1].fields, [NATIVE_CONTRACT.run.version, ID, '/run/x', seen[0].fields[0]]);
  assert.equal(parseExited(seen[2]), { kind: 'code', value: 5 });
});

test('a daemon lost after "exited" without answering: the next one gets "resume" with the end', async () => {
  let n = 0;
  const seen: RunMessage[] = [];
  const r = await frontWith(['run', 'img'], async (c) => {
    if (n++ === 0) {
      await c.next();
      c.send(exec(['/bin/sh', '-c', 'exit 3'], { id: ID, runDir: '/run/x' }));
      await c.next(); // started
      await c.next(); // exited
      c.socket.destroy();
      return;
    }
    seen.push((await c.next())!);
    c.send(encodeExit(3, ''));
  });
  assert.is(r.code, 3, r.stderr);
  assert.is(r.stderr, '');
  assert.is(seen[0].verb, 'resume');
  assert.equal(seen[0].fields.slice(1), [ID, '/run/x', seen[0].fields[3], 'code', '3']);
});

test.run();
