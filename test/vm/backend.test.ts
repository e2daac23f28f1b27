// The qemu backend's argv and accelerator choice, and the guest image cache (built by
// scripts/build-vm-image.sh into a private cache, reused while its inputs are unchanged).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { DEFAULT_CMDLINE, checkGuestFiles, guestArch, guestCmdline } from '../../src/vm/backend.js';
import { ensureVmImage } from '../../src/vm/image.js';
import { QemuBackend, detectAccel } from '../../src/vm/qemu.js';

test('qemu argv: the accelerator, direct kernel boot, one named virtio-serial port on a unix socket', () => {
  const b = new QemuBackend({ accel: 'tcg' });
  const argv = b.argv({
    stateDir: '/s',
    kernel: '/k',
    initrd: '/i',
    cmdline: DEFAULT_CMDLINE,
    memoryMiB: 256,
    cpus: 2,
  });
  const after = (flag: string) => argv[argv.indexOf(flag) + 1];
  assert.match(argv[0], /qemu-system-x86_64$/);
  assert.is(after('-accel'), 'tcg');
  assert.is(after('-kernel'), '/k');
  assert.is(after('-initrd'), '/i');
  assert.is(after('-append'), DEFAULT_CMDLINE);
  assert.is(after('-m'), '256');
  assert.is(after('-smp'), '2');
  assert.ok(argv.includes('socket,path=/s/agent.sock,server=on,wait=off,id=agent'));
  assert.ok(argv.includes('virtserialport,chardev=agent,name=strata.agent'));
  assert.is(b.agentSocket({ stateDir: '/s' } as never), '/s/agent.sock');
});

test('arm64 guests: qemu-system-aarch64 on the virt board, console ttyAMA0; the arch from the env or the host', () => {
  const b = new QemuBackend({ arch: 'arm64' });
  assert.is(b.accel, guestArch({}) === 'arm64' ? b.accel : 'tcg', 'no KVM for a foreign arch');
  const argv = new QemuBackend({ arch: 'arm64', accel: 'tcg' }).argv({
    stateDir: '/s',
    kernel: '/k',
    initrd: '/i',
    cmdline: guestCmdline(b.console),
    memoryMiB: 256,
    cpus: 1,
  });
  const after = (flag: string) => argv[argv.indexOf(flag) + 1];
  assert.match(argv[0], /qemu-system-aarch64$/);
  assert.is(after('-machine'), 'virt');
  assert.is(after('-cpu'), 'max,pauth-impdef=on');
  assert.is(after('-append'), 'console=ttyAMA0 quiet panic=-1 loglevel=3');
  assert.ok(argv.includes('virtserialport,chardev=agent,name=strata.agent'));
  assert.throws(
    () => new QemuBackend({ arch: 'arm64', binary: '/nonexistent/qemu' }).argv({ stateDir: '/s' } as never),
    /not installed: apt-get install qemu-system-arm/,
  );
  assert.is(guestArch({ STRATA_VM_ARCH: 'arm64' }), 'arm64');
  assert.is(guestArch({}, 'arm64'), 'arm64');
  assert.is(guestArch({}, 'x64'), 'amd64');
  assert.throws(
    () => guestArch({ STRATA_VM_ARCH: 'riscv64' }),
    /STRATA_VM_ARCH=riscv64: the guest is amd64 or arm64/,
  );
});

test('kvm only where it really works: PVM counts as none; $STRATA_VM_ACCEL overrides', () => {
  assert.is(detectAccel({ STRATA_VM_ACCEL: 'tcg' }), 'tcg');
  assert.is(detectAccel({ STRATA_VM_ACCEL: 'kvm' }), 'kvm');
  if (existsSync('/sys/module/kvm_pvm')) assert.is(detectAccel({}), 'tcg');
});

test('missing guest files name the script that builds them', () => {
  assert.throws(
    () => checkGuestFiles({ kernel: '/nonexistent/vmlinuz', initrd: '/x' }),
    /VM kernel \/nonexistent\/vmlinuz is missing: run scripts\/build-vm-image.sh/,
  );
});

test('the guest image is built once into its cache, complete, and reused', async () => {
  const cache = mkdtempSync(join(tmpdir(), 'strata-vm-cache-'));
  try {
    const a = await ensureVmImage({ STRATA_VM_CACHE: cache });
    assert.ok(existsSync(a.kernel) && existsSync(a.initrd));
    const manifest = readFileSync(join(a.dir, 'manifest'), 'utf8');
    assert.match(
      manifest,
      /^arch amd64\nkernel .*cloud-amd64\nagent [0-9a-f]{64}\nmodules .*virtio_console.ko.*fuse.ko/,
    );
    const b = await ensureVmImage({ STRATA_VM_CACHE: cache });
    assert.is(b.dir, a.dir);
    assert.equal(
      readdirSync(cache).filter((n) => !n.startsWith('.')),
      [a.dir.split('/').pop()],
    );
    assert.equal((await ensureVmImage({ STRATA_VM_IMAGE: '/elsewhere' })).kernel, '/elsewhere/vmlinuz');
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

test.run();
