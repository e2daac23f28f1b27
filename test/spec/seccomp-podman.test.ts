// Parity with podman: for the same capability set, the linux.seccomp strata writes equals the one
// podman 4.3 writes into its container's config.json on this machine (from the same profile file).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import type { RuntimeConfig } from '../../src/schema/generated/runtime-config.js';
import { DEFAULT_SECCOMP_PROFILE, seccompFor } from '../../src/spec/seccomp.js';
import { busyboxImage } from '../fixtures/images.js';
import { PrivatePodman } from '../fixtures/private-podman.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-seccomp-podman-'));
const podman = new PrivatePodman(dir, 'vfs');

test.after(async () => {
  await podman.destroy();
  rmSync(dir, { recursive: true, force: true });
});

async function podmanConfig(...createArgs: string[]): Promise<RuntimeConfig> {
  const { stdout } = await podman.podman(
    '--runtime',
    'runc',
    'create',
    '--network',
    'none',
    ...createArgs,
    'localhost/strata-test/busybox:latest',
    'true',
  );
  const id = stdout.trim();
  // `podman init` writes the bundle's config.json without starting the container.
  await podman.podman('--runtime', 'runc', 'init', id);
  const userdata = join(podman.root, 'vfs-containers', id, 'userdata');
  const config = JSON.parse(readFileSync(join(userdata, 'config.json'), 'utf8')) as RuntimeConfig;
  await podman.podman('rm', '-f', id);
  return config;
}

test('setup: podman with a private store holding the busybox image', async () => {
  await podman.init();
  await podman.load((await busyboxImage()).dockerArchive);
  assert.ok((await readdir(podman.root)).length > 0);
});

for (const caps of [[], ['--cap-add', 'SYS_ADMIN', '--cap-add', 'SYS_PTRACE'], ['--cap-drop', 'ALL']]) {
  test(`podman ${caps.join(' ') || '(default capabilities)'}: the same linux.seccomp`, async () => {
    const config = await podmanConfig(...caps);
    const bounding = config.process?.capabilities?.bounding ?? [];
    assert.equal(seccompFor(DEFAULT_SECCOMP_PROFILE, bounding), config.linux?.seccomp);
  });
}

test.run();
