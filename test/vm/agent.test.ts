// The guest agent (native/vm/strata-agent.c) built for this machine and run with --stdio: the host
// session (src/vm/agent-session.ts) talks to it over a pipe pair exactly as over virtio-serial.
// stdio and credits, exit codes and signals, env/cwd/user, a process whose root is served by the
// real FUSE server from a store, stale bytes, a reconnect, an oversized frame, a version
// mismatch, silence, an agent killed mid-request, and the arm64 build under qemu-aarch64-static.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough, Readable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { agentExecutable } from '../../src/executables.js';
import { prepareImage } from '../../src/mount/serve.js';
import { importImage } from '../../src/store/import.js';
import { openStore } from '../../src/store/store.js';
import { AgentSession, FuseRelayStats, type ProcessIo } from '../../src/vm/agent-session.js';
import { treeSource } from '../../src/vm/host.js';
import { FRAME, HEADER_SIZE, MAX_PAYLOAD, VM } from '../../src/vm/protocol.js';
import { busyboxImage } from '../fixtures/images.js';

interface Agent {
  child: ChildProcess;
  stream: Duplex;
  stderr: string[];
}

function startAgent(argv: string[] = [agentExecutable(), '--stdio']): Agent {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const stream = Duplex.from({ readable: child.stdout!, writable: child.stdin! });
  stream.on('error', () => undefined);
  return { child, stream, stderr };
}

async function stopAgent(a: Agent): Promise<void> {
  if (a.child.exitCode === null && a.child.signalCode === null) {
    const gone = new Promise((r) => a.child.once('exit', r));
    a.child.stdin!.end();
    const t = setTimeout(() => a.child.kill('SIGKILL'), 2000);
    await gone;
    clearTimeout(t);
  }
}

function collect(): { io: ProcessIo; out: () => string; err: () => string } {
  const o: Buffer[] = [];
  const e: Buffer[] = [];
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (d: Buffer) => o.push(d));
  stderr.on('data', (d: Buffer) => e.push(d));
  return {
    io: { stdout, stderr },
    out: () => Buffer.concat(o).toString(),
    err: () => Buffer.concat(e).toString(),
  };
}

async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable(`expected a rejection matching ${re}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('HELLO, then a process: stdout, stderr and its exit code; the agent ends with the stream', async () => {
  const a = startAgent();
  const s = new AgentSession(a.stream);
  const hello = await s.start();
  assert.is(hello.version, VM.version);
  assert.match(hello.info, /arch=x86_64/);
  const c = collect();
  const p = s.exec({ argv: ['/bin/sh', '-c', 'echo out; echo err >&2; exit 3'], env: [] }, c.io);
  assert.ok((await p.pid) > 0);
  assert.equal(await p.exited, { code: 3 });
  assert.is(c.out(), 'out\n');
  assert.is(c.err(), 'err\n');
  await stopAgent(a);
  assert.is(a.child.exitCode, 0, 'the agent exits when the host closes the stream');
});

test('stdin and stdout of 3 MiB pass under credits; env, cwd and uid reach the process', async () => {
  const a = startAgent();
  const s = new AgentSession(a.stream);
  await s.start();
  const big = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  const c = collect();
  const p = s.exec({ argv: ['cat'], env: ['PATH=/usr/bin:/bin'] }, { ...c.io, stdin: Readable.from([big]) });
  assert.equal(await p.exited, { code: 0 });
  assert.ok(Buffer.from(c.out(), 'latin1').length > 0);
  const c2 = collect();
  const p2 = s.exec(
    {
      argv: ['/bin/sh', '-c', 'echo "$FOO $(pwd) $(id -u):$(id -g)"'],
      env: ['FOO=bar', 'PATH=/bin'],
      cwd: '/tmp',
      uid: 65534,
      gid: 65534,
    },
    c2.io,
  );
  assert.equal(await p2.exited, { code: 0 });
  assert.is(c2.out(), 'bar /tmp 65534:65534\n');
  await stopAgent(a);
});

test('the bytes that come back are the bytes that went in', async () => {
  const a = startAgent();
  const s = new AgentSession(a.stream);
  await s.start();
  const big = Buffer.alloc(2 * 1024 * 1024 + 3);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 8)) & 0xff;
  const chunks: Buffer[] = [];
  const stdout = new PassThrough();
  stdout.on('data', (d: Buffer) => chunks.push(d));
  const p = s.exec(
    { argv: ['cat'], env: ['PATH=/bin'] },
    { stdout, stderr: new PassThrough(), stdin: Readable.from([big]) },
  );
  assert.equal(await p.exited, { code: 0 });
  assert.ok(Buffer.concat(chunks).equals(big));
  await stopAgent(a);
});

test('a command that cannot start is an error naming it; a signal ends a process as 128+N', async () => {
  const a = startAgent();
  const s = new AgentSession(a.stream);
  await s.start();
  const c = collect();
  const bad = s.exec({ argv: ['/nonexistent/cmd'], env: [] }, c.io);
  await rejects(bad.exited, /exec \/nonexistent\/cmd: No such file or directory/);
  const p = s.exec({ argv: ['sleep', '30'], env: ['PATH=/bin:/usr/bin'] }, collect().io);
  const pid = await p.pid;
  p.signal(15);
  assert.equal(await p.exited, { code: 143, signal: 15 });
  assert.not.ok(alive(pid));
  await stopAgent(a);
});

test('a process whose root is the FUSE server of a store, relayed over the stream', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-vm-agent-'));
  try {
    const store = await openStore(join(dir, 'store'));
    const img = await busyboxImage();
    await importImage(store, `oci:${img.ociLayout}:${img.tag}`, { name: 'busybox' });
    const prepared = await prepareImage({ storeRoot: store.root, ref: 'busybox', passthrough: false });
    const a = startAgent();
    const s = new AgentSession(a.stream);
    await s.start();
    const c = collect();
    const p = s.exec(
      {
        argv: [
          '/bin/sh',
          '-c',
          'cat /etc/motd; cat /home/app/notes.txt; ls /usr/share/strata | wc -l; id -u',
        ],
        env: ['PATH=/bin'],
        fuseRoot: true,
        cwd: '/home/app',
        uid: 1000,
        gid: 50,
      },
      { ...c.io, fuse: prepared.handler },
    );
    assert.equal(await p.exited, { code: 0 }, c.err());
    assert.is(c.out(), 'strata busybox test image\nowned by app, group staff\n5\n1000\n');
    const w = collect();
    const q = s.exec(
      {
        argv: ['/bin/sh', '-c', 'echo new > /etc/motd && cat /etc/motd && touch /made && ls /made'],
        env: ['PATH=/bin'],
        fuseRoot: true,
        writable: true,
      },
      { ...w.io, fuse: prepared.handler },
    );
    assert.equal(await q.exited, { code: 0 }, w.err());
    assert.is(w.out(), 'new\n/made\n', 'a writable root: an overlay over the FUSE root');
    const ro = collect();
    const r = s.exec(
      { argv: ['/bin/sh', '-c', 'touch /x'], env: ['PATH=/bin'], fuseRoot: true },
      { ...ro.io, fuse: prepared.handler },
    );
    assert.is((await r.exited).code, 1);
    assert.match(ro.err(), /Read-only file system/);
    await stopAgent(a);
    await prepared.release();
    assert.is(readFileSync('/proc/self/mountinfo', 'utf8').includes(dir), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the guest-side tree cache: the same answers as relaying, a fraction of the requests relayed, placeholders still the host's", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-vm-agent-'));
  try {
    const store = await openStore(join(dir, 'store'));
    const img = await busyboxImage();
    await importImage(store, `oci:${img.ociLayout}:${img.tag}`, { name: 'busybox' });
    // /etc/extra is a placeholder: /etc is then the host's to answer (its entries differ).
    const prepared = await prepareImage({
      storeRoot: store.root,
      ref: 'busybox',
      passthrough: false,
      placeholders: [{ path: '/etc/extra', type: 'dir' }],
    });
    const a = startAgent();
    const s = new AgentSession(a.stream);
    await s.start();
    const walk =
      'find / -xdev | sort; ls -lnR /bin /etc /home /usr /var; cat /etc/motd /home/app/notes.txt; ' +
      'readlink /bin/sh; ls -d /etc/extra; stat -c "%n %s %a %u %g %h" /bin/busybox /etc /usr/share/strata/*; ' +
      'md5sum /bin/busybox /usr/share/strata/*.bin /usr/share/strata/*.txt';
    const run = async (tree: boolean) => {
      const c = collect();
      const fuseStats = new FuseRelayStats();
      const p = s.exec(
        { argv: ['/bin/sh', '-c', walk], env: ['PATH=/bin'], fuseRoot: true },
        { ...c.io, fuse: prepared.handler, fuseStats, tree: tree ? treeSource(prepared) : undefined },
      );
      assert.equal(await p.exited, { code: 0 }, c.err());
      // The metadata requests (LOOKUP, GETATTR, READLINK, READDIR, READDIRPLUS, GETXATTR).
      let relayed = 0;
      for (const op of [1, 3, 5, 22, 28, 44]) relayed += fuseStats.byOpcode.get(op)?.count ?? 0;
      return { out: c.out(), relayed };
    };
    const relayed = await run(false);
    const cached = await run(true);
    const again = await run(true);
    assert.is(cached.out, relayed.out, 'the agent answers exactly as the host');
    assert.ok(relayed.out.includes('/etc/extra\n') && relayed.out.includes('strata busybox test image'));
    assert.ok(relayed.relayed > 50, `relaying: ${relayed.relayed} requests`);
    // Left to the host: the directories the placeholder changes (/ and /etc).
    assert.ok(cached.relayed <= 10, `with the tree: ${cached.relayed} of ${relayed.relayed}`);
    assert.is(again.out, relayed.out);
    // A tree that arrives broken (a chunk out of order) is dropped: its process is relayed whole.
    const bad = collect();
    const frame = (type: number, payload: Buffer) => {
      const h = Buffer.alloc(HEADER_SIZE);
      h.writeUInt16LE(VM.magic, 0);
      h.writeUInt8(type, 2);
      h.writeUInt32LE(s.session, 4);
      h.writeUInt32LE(payload.length, 12);
      return Buffer.concat([h, payload]);
    };
    const chunk = Buffer.alloc(16 + 8);
    chunk.writeUInt32LE(999, 0);
    chunk.writeUInt32LE(64, 4);
    chunk.writeUInt32LE(8, 8); // offset 8 first: out of order
    a.stream.write(frame(FRAME.tree, chunk));
    const fuseStats = new FuseRelayStats();
    const src = treeSource(prepared)!;
    const p = s.exec(
      {
        argv: ['/bin/sh', '-c', 'cat /etc/motd'],
        env: ['PATH=/bin'],
        fuseRoot: true,
        tree: { ...src.answers, id: 999 },
      },
      { ...bad.io, fuse: prepared.handler, fuseStats },
    );
    assert.equal(await p.exited, { code: 0 }, bad.err());
    assert.is(bad.out(), 'strata busybox test image\n');
    assert.ok(fuseStats.count > 5, 'relayed');
    await stopAgent(a);
    await prepared.release();
    assert.is(readFileSync('/proc/self/mountinfo', 'utf8').includes(dir), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stale bytes before HELLO are skipped; a new HELLO ends the old session and its processes', async () => {
  const a = startAgent();
  // A half frame and a whole one of an older session still in the port.
  const old = Buffer.alloc(HEADER_SIZE + 40);
  old.writeUInt16LE(VM.magic, 0);
  old.writeUInt8(FRAME.data, 2);
  old.writeUInt32LE(77, 4);
  old.writeUInt32LE(40, 12);
  a.child.stdin!.write(Buffer.concat([old.subarray(10), old]));
  const first = new AgentSession(a.stream);
  await first.start();
  const sleeper = first.exec({ argv: ['sleep', '30'], env: ['PATH=/bin:/usr/bin'] }, collect().io);
  const pid = await sleeper.pid;
  const second = new AgentSession(a.stream);
  await second.start();
  const c = collect();
  const p = second.exec({ argv: ['echo', 'second'], env: ['PATH=/bin'] }, c.io);
  assert.equal(await p.exited, { code: 0 });
  assert.is(c.out(), 'second\n');
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
  assert.not.ok(alive(pid), "the old session's process was killed");
  await stopAgent(a);
});

test('an oversized frame is refused by the agent, which stays up for the next session', async () => {
  const a = startAgent();
  const s = new AgentSession(a.stream);
  await s.start();
  const head = Buffer.alloc(HEADER_SIZE);
  head.writeUInt16LE(VM.magic, 0);
  head.writeUInt8(FRAME.data, 2);
  head.writeUInt32LE(s.session, 4);
  head.writeUInt32LE(MAX_PAYLOAD + 1, 12);
  a.child.stdin!.write(head);
  const again = new AgentSession(a.stream);
  await again.start();
  const c = collect();
  assert.equal(await again.exec({ argv: ['true'], env: ['PATH=/bin:/usr/bin'] }, c.io).exited, { code: 0 });
  assert.match(a.stderr.join(''), /exceeds/);
  await stopAgent(a);
});

test('a version mismatch and a silent guest are clear errors', async () => {
  const a = startAgent();
  const s = new AgentSession(a.stream, { version: 99 });
  await rejects(s.start(), /speaks protocol version 1, strata speaks 99/);
  await stopAgent(a);
  const silent = startAgent(['sh', '-c', 'cat >/dev/null']);
  const q = new AgentSession(silent.stream, { helloTimeoutMs: 300 });
  await rejects(q.start(), /did not say hello within 300 ms/);
  silent.child.kill('SIGKILL');
  await new Promise((r) => silent.child.once('exit', r));
});

test('the agent dying mid-request fails the process and leaves nothing', async () => {
  const a = startAgent();
  const s = new AgentSession(a.stream);
  await s.start();
  let requests = 0;
  const p = s.exec(
    { argv: ['ls', '/'], env: ['PATH=/bin'], fuseRoot: true },
    { ...collect().io, fuse: { handle: () => (requests++, new Promise<null>(() => undefined)) } },
  );
  for (let i = 0; i < 200 && requests === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(requests > 0, 'the guest asked for something');
  a.child.kill('SIGKILL');
  await rejects(p.exited, /went away/);
  assert.not.ok(s.isOpen);
  await new Promise((r) =>
    a.child.exitCode === null && a.child.signalCode === null ? a.child.once('exit', r) : r(0),
  );
});

test('a terminal: its window size at start and after RESIZE, input through it, a signal', async () => {
  const a = startAgent();
  const s = new AgentSession(a.stream);
  await s.start();
  const out: Buffer[] = [];
  const stdout = new PassThrough();
  stdout.on('data', (d: Buffer) => out.push(d));
  const stdin = new PassThrough();
  const p = s.exec(
    {
      argv: ['/bin/sh', '-c', 'stty size; read line; stty size; echo "got $line"; [ -t 0 ] && echo tty'],
      env: ['PATH=/bin:/usr/bin'],
      tty: { rows: 33, cols: 101 },
    },
    { stdout, stderr: new PassThrough(), stdin },
  );
  await p.pid;
  for (let i = 0; i < 200 && !Buffer.concat(out).toString().includes('33 101'); i++)
    await new Promise((r) => setTimeout(r, 10));
  p.resize({ rows: 40, cols: 120 });
  await new Promise((r) => setTimeout(r, 50));
  stdin.write('hello\n');
  assert.equal(await p.exited, { code: 0 });
  const text = Buffer.concat(out).toString().replace(/\r/g, '');
  assert.match(text, /33 101\n/);
  assert.match(text, /40 120\ngot hello\ntty\n/);
  const q = s.exec(
    { argv: ['sleep', '30'], env: ['PATH=/bin:/usr/bin'], tty: { rows: 24, cols: 80 } },
    { stdout: new PassThrough(), stderr: new PassThrough() },
  );
  await q.pid;
  q.signal(9);
  assert.equal(await q.exited, { code: 137, signal: 9 });
  await stopAgent(a);
});

test('the arm64 agent speaks the same protocol under qemu-aarch64-static', async () => {
  const arm = agentExecutable() + '-arm64';
  const qemu = '/usr/bin/qemu-aarch64-static';
  if (!existsSync(arm) || !existsSync(qemu)) {
    throw new Error(`needs ${arm} (npm run install cross-builds it) and ${qemu}`);
  }
  const a = startAgent([qemu, arm, '--stdio']);
  const s = new AgentSession(a.stream);
  const hello = await s.start();
  assert.match(hello.info, /arch=aarch64/);
  const bad = s.exec({ argv: ['/nonexistent'], env: [] }, collect().io);
  await rejects(bad.exited, /No such file/);
  await stopAgent(a);
});

test.run();
