// The vfkit backend without a Mac: its argv, its REST state calls and its socket handling, against
// a stand-in vfkit that records its argv, answers the REST API on the --restful-uri socket, and
// bridges each connection to the virtio-vsock socketURL to a guest agent run with --stdio (what
// vfkit and the guest do together). The VM host then runs a process whose root is served from
// the store, exactly as with qemu.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { agentExecutable } from '../../src/executables.js';
import { AgentSession } from '../../src/vm/agent-session.js';
import { connectWhenReady, DEFAULT_CMDLINE } from '../../src/vm/backend.js';
import { VmHost, hostSocket } from '../../src/vm/host.js';
import { VSOCK_PORT, VfkitBackend } from '../../src/vm/vfkit.js';
import { isAlive, leaseIds, makeEnv, removeEnv, type Env } from '../integration/harness.js';

const STANDIN = String.raw`
const fs = require('fs'), net = require('net'), http = require('http'), cp = require('child_process');
const argv = process.argv.slice(2);
const dir = process.env.STANDIN_DIR;
fs.writeFileSync(dir + '/argv.json', JSON.stringify(argv));
const log = (l) => fs.appendFileSync(dir + '/rest.log', l + '\n');
const dev = argv.filter((a, i) => argv[i - 1] === '--device').find((d) => d.startsWith('virtio-vsock,'));
const sock = /socketURL=([^,]+)/.exec(dev)[1];
const rest = argv[argv.indexOf('--restful-uri') + 1].replace('unix://', '');
let state = 'VirtualMachineStateRunning';
net.createServer((c) => {
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
  for (const f of ['vmlinuz', 'initramfs.img']) writeFileSync(join(dir, f), 'x');
});

test.after(() => {
  removeEnv(env);
  rmSync(dir, { recursive: true, force: true });
});

const config = () => ({
  stateDir: join(dir, 'state'),
  kernel: join(dir, 'vmlinuz'),
  initrd: join(dir, 'initramfs.img'),
  cmdline: DEFAULT_CMDLINE,
  memoryMiB: 512,
  cpus: 2,
});

test('argv: linux bootloader, console log, the vsock device listening on a unix socket, REST', () => {
  const b = new VfkitBackend({ binary: join(dir, 'vfkit') });
  const c = config();
  assert.equal(b.argv(c), [
    join(dir, 'vfkit'),
    '--cpus',
    '2',
    '--memory',
    '512',
    '--bootloader',
    `linux,kernel=${c.kernel},initrd=${c.initrd},cmdline="${DEFAULT_CMDLINE}"`,
    '--device',
    `virtio-serial,logFilePath=${c.stateDir}/console.log`,
    '--device',
    `virtio-vsock,port=${VSOCK_PORT},socketURL=${c.stateDir}/agent.sock,listen`,
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

test.run();
