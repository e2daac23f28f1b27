// The vfkit backend without a Mac: its argv, its REST state calls and its socket handling, against
// a stand-in vfkit that records its argv and does what vfkit does with it (crc-org/vfkit
// pkg/vf/vsock.go, bootloader.go): it refuses an arm64 kernel that is not an uncompressed Image
// (no "ARMd" at 0x38), answers the REST API on the --restful-uri socket, and for a virtio-vsock
// device in `connect` mode listens on socketURL at once and bridges each connection to the
// guest's port once the guest booted (closing earlier ones), here a guest agent run with --stdio
// (in `listen` mode vfkit would dial socketURL when the guest connects out, which our agent never
// does). The VM host then runs a process whose root is served from the store, exactly as with
// qemu. A real Mac: docs/vm-mac-check.md.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { agentExecutable } from '../../src/executables.js';
import { macCheck } from '../../scripts/vm-mac-check.js';
import { AgentSession } from '../../src/vm/agent-session.js';
import { connectWhenReady, guestCmdline } from '../../src/vm/backend.js';
import { VmHost, hostSocket } from '../../src/vm/host.js';
import { VSOCK_PORT, VfkitBackend } from '../../src/vm/vfkit.js';
import { isAlive, leaseIds, makeEnv, removeEnv, type Env } from '../integration/harness.js';

const STANDIN = String.raw`
const fs = require('fs'), net = require('net'), http = require('http'), cp = require('child_process');
const argv = process.argv.slice(2);
const dir = process.env.STANDIN_DIR;
fs.writeFileSync(dir + '/argv.json', JSON.stringify(argv));
const log = (l) => fs.appendFileSync(dir + '/rest.log', l + '\n');
const fail = (m) => { process.stderr.write('vfkit: ' + m + '\n'); process.exit(1); };
const boot = argv[argv.indexOf('--bootloader') + 1];
const kernel = /(?:^|,)kernel=([^,]+)/.exec(boot)[1];
const head = fs.readFileSync(kernel).subarray(0, 64);
if (head.subarray(0x38, 0x3c).toString('latin1') !== 'ARMd')
  fail('kernel must be uncompressed, ' + kernel + ' is a compressed file');
if (!/(?:^|,)initrd=[^,]+/.test(boot) || !/,cmdline="[^"]*"$/.test(boot)) fail('bad --bootloader ' + boot);
const dev = argv.filter((a, i) => argv[i - 1] === '--device').find((d) => d.startsWith('virtio-vsock,'));
const sock = /socketURL=([^,]+)/.exec(dev)[1];
const mode = /,connect(,|$)/.test(dev) ? 'connect' : 'listen'; // vfkit's default is listen
const rest = argv[argv.indexOf('--restful-uri') + 1].replace('unix://', '');
let state = 'VirtualMachineStateRunning';
// Like vfkit: the unix socket listens at once, but until the guest's agent listens on its vsock
// port (the "boot", 400 ms here) each connection is closed as the vsock dial fails.
const booted = Date.now() + 400;
if (mode === 'connect') net.createServer((c) => {
  if (Date.now() < booted) return c.destroy();
  const agent = cp.spawn(process.env.STANDIN_AGENT, ['--stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
  c.pipe(agent.stdin); agent.stdout.pipe(c);
  c.on('close', () => agent.stdin.end());
}).listen(sock);
http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    log(req.method + ' ' + req.url + ' ' + body);
    if (req.url !== '/vm/state') { res.statusCode = 404; return res.end(); }
    if (req.method === 'POST') {
      const want = JSON.parse(body).state;
      res.end(JSON.stringify({ state }));
      if (want === 'Stop' || want === 'HardStop') setTimeout(() => process.exit(0), 50);
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ state, canStart: false, canStop: true, canPause: true, canResume: false }));
  });
}).listen(rest);
`;

let env: Env;
let dir: string;

test.before(async () => {
  env = await makeEnv(['busybox']);
  dir = mkdtempSync(join(tmpdir(), 'strata-vfkit-'));
  writeFileSync(join(dir, 'vfkit'), `#!${process.execPath}\n${STANDIN}`);
  chmodSync(join(dir, 'vfkit'), 0o755);
  // An arm64 Image's header: "ARMd" at 0x38 (what vfkit checks on Apple silicon).
  const image = Buffer.alloc(64);
  image.write('ARMd', 0x38, 'latin1');
  writeFileSync(join(dir, 'vmlinuz'), image);
  writeFileSync(join(dir, 'vmlinuz.gz'), Buffer.from([0x1f, 0x8b, 8, 0, ...Buffer.alloc(60)]));
  writeFileSync(join(dir, 'initramfs.img'), 'x');
});

test.after(() => {
  removeEnv(env);
  rmSync(dir, { recursive: true, force: true });
});

const config = () => ({
  stateDir: join(dir, 'state'),
  kernel: join(dir, 'vmlinuz'),
  initrd: join(dir, 'initramfs.img'),
  cmdline: guestCmdline(new VfkitBackend().console),
  memoryMiB: 512,
  cpus: 2,
});

test('argv: linux bootloader (console hvc0), console log, the vsock device in connect mode, REST', () => {
  const b = new VfkitBackend({ binary: join(dir, 'vfkit') });
  const c = config();
  assert.equal(b.argv(c), [
    join(dir, 'vfkit'),
    '--cpus',
    '2',
    '--memory',
    '512',
    '--bootloader',
    `linux,kernel=${c.kernel},initrd=${c.initrd},cmdline="console=hvc0 quiet panic=-1 loglevel=3"`,
    '--device',
    `virtio-serial,logFilePath=${c.stateDir}/console.log`,
    '--device',
    `virtio-vsock,port=${VSOCK_PORT},socketURL=${c.stateDir}/agent.sock,connect`,
    '--restful-uri',
    `unix://${c.stateDir}/rest.sock`,
  ]);
  assert.throws(
    () => new VfkitBackend({ binary: join(dir, 'none') }).argv(c),
    /not installed: brew install vfkit/,
  );
});

test('a VM host on the vfkit backend: REST state, a process from the store, REST stop, nothing left', async () => {
  const c = config();
  const b = new VfkitBackend({ binary: join(dir, 'vfkit') });
  process.env.STANDIN_DIR = dir;
  process.env.STANDIN_AGENT = agentExecutable();
  const host = new VmHost({ config: c, backend: b, storeRoot: env.storeRoot, log: () => undefined });
  const { mkdirSync } = await import('node:fs');
  mkdirSync(c.stateDir, { recursive: true });
  await host.start();
  assert.is(await b.state(c), 'VirtualMachineStateRunning');
  const sock = await connectWhenReady(hostSocket(c.stateDir), Date.now() + 5000, () => true);
  const client = new AgentSession(sock);
  await client.start();
  const out: Buffer[] = [];
  const stdout = new PassThrough();
  stdout.on('data', (d: Buffer) => out.push(d));
  const p = client.exec(
    { argv: ['/bin/sh', '-c', 'cat /etc/motd; exit 5'], env: ['PATH=/bin'], image: 'busybox' },
    { stdout, stderr: new PassThrough() },
  );
  assert.equal(await p.exited, { code: 5 });
  assert.is(Buffer.concat(out).toString(), 'strata busybox test image\n');
  client.close();
  const pid = JSON.parse(readFileSync(join(c.stateDir, 'state.json'), 'utf8')).hypervisorPid as number;
  await host.stop();
  assert.not.ok(isAlive(pid), 'the stand-in vfkit exited on the REST stop');
  assert.match(
    readFileSync(join(dir, 'rest.log'), 'utf8'),
    /GET \/vm\/state \n(.|\n)*POST \/vm\/state \{"state":"Stop"\}/,
  );
  for (const f of ['agent.sock', 'rest.sock', 'host.sock', 'state.json'])
    assert.not.ok(existsSync(join(c.stateDir, f)), f);
  assert.equal(await leaseIds(env), []);
});

test('a VM without containers stops itself when idle', async () => {
  const c = { ...config(), stateDir: join(dir, 'idle') };
  const { mkdirSync } = await import('node:fs');
  mkdirSync(c.stateDir, { recursive: true });
  const host = new VmHost({
    config: c,
    backend: new VfkitBackend({ binary: join(dir, 'vfkit') }),
    storeRoot: env.storeRoot,
    idleMs: 300,
    log: () => undefined,
  });
  await host.start();
  const pid = JSON.parse(readFileSync(join(c.stateDir, 'state.json'), 'utf8')).hypervisorPid as number;
  const t0 = Date.now();
  await host.stopped;
  assert.ok(Date.now() - t0 < 5000, 'stopped soon after the idle time');
  assert.not.ok(isAlive(pid));
  assert.not.ok(existsSync(join(c.stateDir, 'host.sock')));
});

test('the manual Mac check (scripts/vm-mac-check.ts) passes against the stand-in', async () => {
  process.env.STANDIN_DIR = dir;
  process.env.STANDIN_AGENT = agentExecutable();
  const lines: string[] = [];
  const arch = spawnSync('uname', ['-m'], { encoding: 'utf8' }).stdout.trim();
  const steps = await macCheck(dir, { binary: join(dir, 'vfkit'), arch, log: (l) => lines.push(l) });
  assert.equal(
    steps.map((s) => [s.name, s.ok]),
    [
      ['kernel', true],
      ['REST GET /vm/state', true],
      ['agent hello over the vsock bridge', true],
      ['uname -m in the guest', true],
      ['crun in the guest', true],
      ['exit code from the guest', true],
      ['REST POST /vm/state Stop', true],
    ],
    lines.join('\n'),
  );
});

test('a compressed arm64 kernel: vfkit refuses it, the VM host says so and leaves nothing', async () => {
  const c = { ...config(), stateDir: join(dir, 'gz'), kernel: join(dir, 'vmlinuz.gz') };
  const { mkdirSync } = await import('node:fs');
  mkdirSync(c.stateDir, { recursive: true });
  const host = new VmHost({
    config: c,
    backend: new VfkitBackend({ binary: join(dir, 'vfkit') }),
    storeRoot: env.storeRoot,
    log: () => undefined,
  });
  try {
    await host.start();
    assert.unreachable('started with a compressed kernel');
  } catch (err) {
    assert.match((err as Error).message, /the VM exited before its agent socket .* was ready/);
  }
  await host.stopped;
  assert.match(readFileSync(join(c.stateDir, 'hypervisor.log'), 'utf8'), /kernel must be uncompressed/);
  for (const f of ['agent.sock', 'rest.sock', 'host.sock', 'state.json'])
    assert.not.ok(existsSync(join(c.stateDir, f)), f);
});

test.run();
