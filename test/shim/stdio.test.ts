// ProcessIO (src/shim/stdio.ts) with real fifos, files, processes and a real logging binary, as
// containerd's clients use them: what the process reads and writes, when its stdin ends, and that
// nothing waits in a blocking open (a stuck open holds one of libuv's four threadpool threads).
import { spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  constants as fsc,
  existsSync,
  mkdtempSync,
  openSync,
  promises as fsp,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { InvalidArgumentError } from '../../src/errors.js';
import { outputMode, ProcessIO } from '../../src/shim/stdio.js';
import { eventually, isAlive } from '../integration/harness.js';

let dir: string;

test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'strata-stdio-'));
});
test.after.each(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function fifo(name: string): Promise<string> {
  const p = join(dir, name);
  await execa('mkfifo', [p]);
  return p;
}

/** Reads a fifo as a client does (a reader that waits for the writer), until its end. */
function readAll(path: string): Promise<string> {
  return fsp.readFile(path, 'utf8');
}

/** Runs `sh -c script` with the process's stdio, closes our copies; resolves with its exit code. */
function run(io: ProcessIO, script: string): Promise<number> {
  const child = spawn('sh', ['-c', script], { stdio: [...io.child] });
  io.closeChildEnds();
  return new Promise((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
}

test('stdin: a writer that writes and leaves before the process reads still ends its stdin', async () => {
  const [inp, out] = [await fifo('in'), await fifo('out')];
  const io = new ProcessIO({ stdin: inp, stdout: out, stderr: '', terminal: false });
  const output = readAll(out);
  // The client's writer comes, writes, and is gone before the process even starts.
  const w = openSync(inp, fsc.O_WRONLY);
  writeSync(w, 'one\ntwo\n');
  closeSync(w);
  await new Promise((r) => setTimeout(r, 100));
  const code = await run(io, 'cat; echo END');
  assert.is(code, 0);
  await io.drained();
  io.close();
  assert.is(await output, 'one\ntwo\nEND\n');
});

test('stdin: no end of file before a writer came (the process waits for its input)', async () => {
  const [inp, out] = [await fifo('in'), await fifo('out')];
  const io = new ProcessIO({ stdin: inp, stdout: out, stderr: '', terminal: false });
  const output = readAll(out);
  const exited = run(io, 'cat; echo END');
  const early = await Promise.race([exited, new Promise((r) => setTimeout(() => r('waiting'), 300))]);
  assert.is(early, 'waiting', 'stdin did not end before any writer opened the fifo');
  const w = openSync(inp, fsc.O_WRONLY);
  writeSync(w, 'late\n');
  closeSync(w);
  assert.is(await exited, 0);
  await io.drained();
  io.close();
  assert.is(await output, 'late\nEND\n');
});

test('CloseIO: what the client wrote first is delivered, then the end, while its writer stays open', async () => {
  const [inp, out] = [await fifo('in'), await fifo('out')];
  const io = new ProcessIO({ stdin: inp, stdout: out, stderr: '', terminal: false });
  const output = readAll(out);
  const exited = run(io, 'cat; echo END');
  // The client: writes more than a fifo holds at once, then keeps its writer open.
  const client = spawn(
    'sh',
    [
      '-c',
      'exec 3>"$1"; head -c 100000 /dev/zero | tr "\\0" x >&3; echo >&3; echo last >&3; echo written; exec sleep 30',
      'sh',
      inp,
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  await new Promise((r) => client.stdout.once('data', r));
  io.closeStdin();
  assert.is(await exited, 0, 'the process saw the end of its stdin');
  client.kill('SIGKILL');
  await io.drained();
  io.close();
  const text = await output;
  assert.is(text.length, 100_001 + 'last\nEND\n'.length, text.slice(-40));
  assert.ok(text.endsWith('\nlast\nEND\n'));
});

test('a stdin fifo nobody ever opens holds no thread: many of them, and file reads still run', async () => {
  const ios: ProcessIO[] = [];
  for (let i = 0; i < 8; i++) {
    ios.push(new ProcessIO({ stdin: await fifo(`in${i}`), stdout: '', stderr: '', terminal: false }));
  }
  writeFileSync(join(dir, 'f'), 'still served');
  const read = await Promise.race([
    fsp.readFile(join(dir, 'f'), 'utf8'),
    new Promise((r) => setTimeout(() => r('threadpool stuck'), 5000)),
  ]);
  assert.is(read, 'still served');
  for (const io of ios) io.close();
});

test('file://: stdout and stderr appended to one file, its directory made', async () => {
  const log = join(dir, 'logs', 'sub', 'task.log');
  const uri = `file://${log}`;
  for (const word of ['first', 'second']) {
    const io = new ProcessIO({ stdin: '', stdout: uri, stderr: uri, terminal: false });
    assert.is(await run(io, `echo ${word}-out; echo ${word}-err >&2`), 0);
    await io.drained();
    io.close();
  }
  assert.ok(await eventually(() => readFileSync(log, 'utf8').split('\n').length === 5));
  const lines = readFileSync(log, 'utf8').trim().split('\n');
  assert.equal(lines.sort(), ['first-err', 'first-out', 'second-err', 'second-out']);
});

test('binary://: the logging binary gets fd 3/4, its args and env, and SIGTERM at close', async () => {
  const logger = join(dir, 'logger.sh');
  writeFileSync(
    logger,
    [
      '#!/bin/sh',
      // args: "dir" DIR "mode" MODE (sorted query keys, as containerd passes them)
      'd="$2"',
      'echo "$CONTAINER_NAMESPACE/$CONTAINER_ID $*" > "$d/who"',
      'trap \'echo term > "$d/term"; exit 0\' TERM',
      'cat <&3 > "$d/out" 4<&- 5>&- & cat <&4 > "$d/err" 3<&- 5>&- &',
      'exec 3<&- 4<&- 5>&-', // ready: fd 5 closed
      'while :; do sleep 0.05; done',
    ].join('\n'),
  );
  chmodSync(logger, 0o755);
  const uri = `binary://${logger}?mode=test&dir=${encodeURIComponent(dir)}`;
  const io = new ProcessIO(
    { stdin: '', stdout: uri, stderr: uri, terminal: false },
    { id: 'c1', namespace: 'ns1' },
  );
  await io.ready;
  assert.is(readFileSync(join(dir, 'who'), 'utf8'), `ns1/c1 dir ${dir} mode test\n`);
  assert.is(await run(io, 'echo to-out; echo to-err >&2'), 0);
  assert.ok(
    await eventually(
      () => existsSync(join(dir, 'out')) && readFileSync(join(dir, 'out'), 'utf8') === 'to-out\n',
    ),
  );
  assert.ok(await eventually(() => readFileSync(join(dir, 'err'), 'utf8') === 'to-err\n'));
  io.close();
  assert.ok(await eventually(() => existsSync(join(dir, 'term'))), 'the logger got SIGTERM');
});

test('binary://: a logger that cannot run, or never gets ready, is a clear error', async () => {
  assert.throws(
    () => new ProcessIO({ stdin: '', stdout: `binary://${dir}/none`, stderr: '', terminal: false }),
    /logging binary .*none: ENOENT/,
  );
  const slow = join(dir, 'slow.sh');
  writeFileSync(slow, '#!/bin/sh\necho $$ > "$0.pid"\nexec sleep 30\n');
  chmodSync(slow, 0o755);
  // ready only when fd 5 closes: `sleep` holds it, so this one is never ready; close() ends it.
  const io = new ProcessIO({ stdin: '', stdout: `binary://${slow}`, stderr: '', terminal: false });
  const state = await Promise.race([
    io.ready.then(() => 'ready'),
    new Promise((r) => setTimeout(() => r('waiting'), 300)),
  ]);
  assert.is(state, 'waiting');
  const pid = Number(readFileSync(`${slow}.pid`, 'utf8'));
  io.close();
  assert.ok(await eventually(() => !isAlive(pid)), 'the logger was stopped');
});

test('bad stdio URIs are InvalidArgument', () => {
  for (const bad of ['relative/path', 'http://x/y', 'file://relative', 'binary://']) {
    assert.throws(
      () => outputMode(bad),
      (e: unknown) => e instanceof InvalidArgumentError,
      bad,
    );
  }
  assert.equal(outputMode(''), { kind: 'fifo' });
  assert.equal(outputMode('/run/x/stdout'), { kind: 'fifo' });
  assert.equal(outputMode('binary:///bin/l?b=2&a=1'), {
    kind: 'binary',
    path: '/bin/l',
    args: ['a', '1', 'b', '2'],
  });
});

test.run();
