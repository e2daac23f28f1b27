// containers.ts serves a container's root through the same code as `strata mount` (serve.ts): the
// kernel shows the same FUSE settings for both — readahead window, superblock options — and only
// the flags that set them apart on purpose differ: a host mount is nosuid,nodev without
// allow_other, a container root keeps setuid binaries and devices and lets the container's users
// in (the container is the boundary there).
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { ContainerManager } from '../../src/daemon/containers.js';
import { openLog } from '../../src/daemon/log.js';
import { attachDetached, mountImage, unmount } from '../../src/mount/attach.js';
import { bdiName } from '../../src/mount/fuse/readahead.js';
import { READAHEAD_KIB } from '../../src/mount/serve.js';
import { IMAGE_ANNOTATION } from '../../src/spec/annotations.js';
import type { RuntimeConfig } from '../../src/schema/generated/runtime-config.js';
import { listLeases } from '../../src/store/leases.js';
import { busyboxImage } from '../fixtures/images.js';
import { fdSnapshot, fdsLeftSince, tempStore, waitFor, type TempStore } from '../mount/real-mount.js';

let store: TempStore;

test.before(async () => {
  store = await tempStore({ busybox: await busyboxImage() });
  await Promise.all(Array.from({ length: 8 }, () => readFile('/proc/self/status')));
});

test.after(async () => {
  await store.cleanup();
});

interface Observed {
  readaheadKib: number;
  /** Per-mount options (mountinfo field 6), sorted. */
  mountOptions: string[];
  /** Superblock options (after the separator), sorted. */
  superOptions: string[];
  fsType: string;
}

/** What the kernel shows for the mount at `dir`. */
async function observe(dir: string): Promise<Observed> {
  const bdi = bdiName((await stat(dir)).dev);
  const readaheadKib = Number(await readFile(`/sys/class/bdi/${bdi}/read_ahead_kb`, 'utf8'));
  const line = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .filter((l) => l.split(' ')[4] === dir)
    .at(-1);
  assert.ok(line, `a mount at ${dir}`);
  const fields = line.split(' ');
  const sep = fields.indexOf('-');
  return {
    readaheadKib,
    mountOptions: fields[5].split(',').sort(),
    superOptions: fields[sep + 3].split(',').sort(),
    fsType: fields[sep + 1],
  };
}

test('a container root and a `strata mount` get the same FUSE settings; only the host flags differ', async () => {
  const fds = fdSnapshot();
  const logFile = join(store.dir, 'daemon.log');
  const manager = new ContainerManager({ storeRoot: store.root, logger: openLog(logFile, false) });
  const bundle = join(store.dir, 'bundle');
  await mkdir(join(bundle, 'rootfs'), { recursive: true });
  const config = {
    ociVersion: '1.0.2',
    root: { path: 'rootfs', readonly: true },
    annotations: { [IMAGE_ANNOTATION]: 'busybox' },
  } as RuntimeConfig;
  await manager.prepareAhead('ctr', bundle, config);
  const state = JSON.stringify({ ociVersion: '1.0.2', id: 'ctr', status: 'creating', bundle });
  const { mountFd } = await manager.createContainer(state);
  const ctrDir = await store.mountPoint();
  attachDetached(mountFd, ctrDir); // as the hook does, here in our namespace to look at it
  const hostDir = await store.mountPoint();
  const host = await mountImage({ storeRoot: store.root, ref: 'busybox', dir: hostDir, method: 'mount-api' });
  try {
    const ctr = await observe(ctrDir);
    const mnt = await observe(hostDir);
    assert.is(ctr.readaheadKib, READAHEAD_KIB, 'container root readahead');
    assert.is(mnt.readaheadKib, READAHEAD_KIB, 'strata mount readahead');
    assert.is(ctr.fsType, 'fuse.strata');
    assert.is(mnt.fsType, 'fuse.strata');
    assert.equal(
      ctr.superOptions.filter((o) => o !== 'allow_other'),
      mnt.superOptions,
      'same superblock options but allow_other',
    );
    assert.ok(ctr.superOptions.includes('allow_other'), 'container root: allow_other');
    assert.not.ok(mnt.superOptions.includes('allow_other'), 'strata mount: no allow_other');
    for (const o of ['nosuid', 'nodev']) {
      assert.not.ok(ctr.mountOptions.includes(o), `container root: no ${o}`);
      assert.ok(mnt.mountOptions.includes(o), `strata mount: ${o}`);
    }
    assert.equal(
      ctr.mountOptions.filter((o) => o !== 'nosuid' && o !== 'nodev'),
      mnt.mountOptions.filter((o) => o !== 'nosuid' && o !== 'nodev'),
    );
  } finally {
    await unmount(ctrDir);
    await host.stop();
  }
  assert.ok(await waitFor(() => manager.size === 0, 3000), 'the root is released once unmounted');
  assert.equal(await listLeases(store.root), []);
  assert.match(await readFile(logFile, 'utf8'), 'container ctr: released (FUSE session ended: unmounted');
  assert.ok(await waitFor(() => fdsLeftSince(fds).length === 0, 2000), `fds left: ${fdsLeftSince(fds)}`);
});

test.run();
