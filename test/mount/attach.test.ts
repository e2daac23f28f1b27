// attach.ts: the automatic fusermount3 fallback when fsopen is not permitted, and mountinfo
// parsing (escaped mount points, optional fields).
import { readFile, stat } from 'node:fs/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isStrataMount, mountImage, unmount } from '../../src/mount/attach.js';
import { bdiName } from '../../src/mount/fuse/readahead.js';
import { READAHEAD_KIB } from '../../src/mount/serve.js';
import { mountAt, parseMountinfo } from '../../src/mount/mountinfo.js';
import { RecordingSyscalls } from '../../src/mount/syscalls.js';
import { busyboxImage } from '../fixtures/images.js';
import { tempStore } from './real-mount.js';

test('auto falls back to fusermount3 when fsopen says EPERM, and mount-api alone does not', async () => {
  const store = await tempStore({ busybox: await busyboxImage() });
  try {
    const dir = await store.mountPoint();
    const denied = new RecordingSyscalls().failOn('fsopen', 'EPERM');
    const mount = await mountImage({ storeRoot: store.root, ref: 'busybox', dir, syscalls: denied });
    assert.is(mount.method, 'fusermount3');
    assert.is(denied.openFds.size, 0, 'the failed attempt closed what it opened');
    assert.ok(isStrataMount(dir));
    assert.match(await readFile(`${dir}/etc/group`, 'utf8'), /wheel/);
    await mount.stop();
    assert.equal(await mount.done, { reason: 'unmounted' });
    assert.equal(store.mounts(), []);

    const strict = new RecordingSyscalls().failOn('fsopen', 'EPERM');
    try {
      await mountImage({ storeRoot: store.root, ref: 'busybox', dir, syscalls: strict, method: 'mount-api' });
      assert.unreachable('method mount-api must not fall back');
    } catch (err) {
      assert.is((err as NodeJS.ErrnoException).code, 'EPERM');
    }
    assert.equal(store.mounts(), []);
  } finally {
    await store.cleanup();
  }
});

test('both methods raise the readahead window; unmount (umount2 on the pool) ends the session', async () => {
  const store = await tempStore({ busybox: await busyboxImage() });
  try {
    for (const method of ['mount-api', 'fusermount3'] as const) {
      const dir = await store.mountPoint();
      const mount = await mountImage({ storeRoot: store.root, ref: 'busybox', dir, method });
      const bdi = `/sys/class/bdi/${bdiName((await stat(dir)).dev)}/read_ahead_kb`;
      assert.is(Number(await readFile(bdi, 'utf8')), READAHEAD_KIB, method);
      // This process serves the mount: a synchronous umount here would wait on itself.
      await unmount(dir);
      assert.equal(await mount.done, { reason: 'unmounted' }, method);
      assert.not.ok(isStrataMount(dir));
    }
    try {
      await unmount(store.dir);
      assert.unreachable();
    } catch (err) {
      assert.match(String(err), /is not a strata mount/);
    }
  } finally {
    await store.cleanup();
  }
});

test('parseMountinfo: fields, optional fields, octal escapes; mountAt picks the top mount', () => {
  const text = [
    '22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw',
    '45 22 0:41 / /tmp/a\\040b ro,relatime - fuse.strata strata:0123456789ab ro,user_id=0',
    '46 45 0:42 / /tmp/a\\040b rw master:3 shared:9 - tmpfs none rw',
  ].join('\n');
  const mounts = parseMountinfo(text);
  assert.equal(
    mounts.map((m) => [m.id, m.parentId, m.mountPoint, m.fsType, m.source]),
    [
      [22, 1, '/', 'ext4', '/dev/vda'],
      [45, 22, '/tmp/a b', 'fuse.strata', 'strata:0123456789ab'],
      [46, 45, '/tmp/a b', 'tmpfs', 'none'],
    ],
  );
  assert.is(mountAt('/tmp/a b', mounts)?.id, 46);
  assert.is(mountAt('/nowhere/x', mounts), undefined);
});

test.run();
