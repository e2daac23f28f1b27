// An arm64 guest (what Apple silicon Macs run under VZ) booted here under qemu-system-aarch64
// (the `virt` board, TCG): the image of scripts/build-vm-image.sh --arch arm64 (Debian's arm64
// cloud kernel as an uncompressed Image, the cross-built agent, crun:arm64), the same agent
// protocol over virtio-serial, and an arm64 busybox container whose root is served from the host's
// store: its output and exit code, then nothing left (no qemu, no socket, no lease).
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { importImage } from '../../src/store/import.js';
import { openStore } from '../../src/store/store.js';
import { AgentSession } from '../../src/vm/agent-session.js';
import { connectWhenReady, guestCmdline } from '../../src/vm/backend.js';
import { VmHost, hostSocket, pidAlive, readVmState } from '../../src/vm/host.js';
import { QemuBackend } from '../../src/vm/qemu.js';
import { busyboxArm64Image } from '../fixtures/images.js';
import { vmImageDir, vmImageFiles } from '../fixtures/vm-image.js';
import { leaseIds, makeEnv, removeEnv, type Env } from '../integration/harness.js';

let env: Env;
let dir: string;
let imageDir: string;

test.before(async () => {
  imageDir = await vmImageDir('arm64');
  env = await makeEnv([]);
  const img = await busyboxArm64Image();
  await importImage(await openStore(env.storeRoot), `oci:${img.ociLayout}:${img.tag}`, {
    name: 'busybox-arm64',
  });
  dir = mkdtempSync(join(tmpdir(), 'strata-vm-arm64-'));
});

test.after(() => {
  removeEnv(env);
  rmSync(dir, { recursive: true, force: true });
});

function ourQemus(): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
        return cmd.includes('qemu-system-aarch64') && cmd.includes(dir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

test('the arm64 kernel is an uncompressed Image (what VZ boots), the agent an aarch64 ELF', () => {
  const { kernel, initrd } = vmImageFiles(imageDir);
  const head = Buffer.alloc(64);
  const fd = openSync(kernel, 'r');
  readSync(fd, head, 0, 64, 0);
  closeSync(fd);
  assert.is(head.subarray(0x38, 0x3c).toString('latin1'), 'ARMd');
  assert.ok(existsSync(initrd));
  assert.match(readFileSync(join(imageDir, 'manifest'), 'utf8'), /^arch arm64\nkernel \S+-cloud-arm64\n/);
});

test('an arm64 guest under qemu-system-aarch64: busybox from the store, output and exit code', async () => {
  const lines: string[] = [];
  const config = {
    stateDir: join(dir, 'vm'),
    ...vmImageFiles(imageDir),
    cmdline: guestCmdline('ttyAMA0'),
    memoryMiB: 512,
    cpus: 1,
  };
  const backend = new QemuBackend({ arch: 'arm64', accel: 'tcg' });
  const host = new VmHost({
    config,
    backend,
    storeRoot: env.storeRoot,
    helloTimeoutMs: 120_000,
    log: (l) => lines.push(l),
  });
  const { mkdirSync } = await import('node:fs');
  mkdirSync(config.stateDir, { recursive: true });
  const t0 = Date.now();
  try {
    await host.start();
    const bootMs = Date.now() - t0;
    assert.match(lines.join('\n'), /agent ready after \d+ ms \(.*aarch64/);
    const sock = await connectWhenReady(hostSocket(config.stateDir), Date.now() + 5000, () => true);
    const client = new AgentSession(sock);
    await client.start();
    const out: Buffer[] = [];
    const stdout = new PassThrough();
    stdout.on('data', (d: Buffer) => out.push(d));
    const t1 = Date.now();
    const p = client.exec(
      {
        argv: ['/bin/sh', '-c', 'uname -m; cat /etc/motd; exit 3'],
        env: ['PATH=/bin'],
        image: 'busybox-arm64',
      },
      { stdout, stderr: new PassThrough() },
    );
    assert.equal(await p.exited, { code: 3 });
    assert.is(Buffer.concat(out).toString(), 'aarch64\nstrata arm64 busybox\n');
    console.log(`  arm64 guest: boot to agent ready ${bootMs} ms, first container ${Date.now() - t1} ms`);
    client.close();
  } finally {
    const st = readVmState(config.stateDir);
    await host.stop();
    if (st) assert.not.ok(pidAlive(st.hypervisorPid), 'qemu stopped');
  }
  assert.equal(ourQemus(), []);
  for (const f of ['agent.sock', 'host.sock', 'state.json'])
    assert.not.ok(existsSync(join(config.stateDir, f)), f);
  assert.equal(await leaseIds(env), []);
});

test.run();
