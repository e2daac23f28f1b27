import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { constants as c, native } from '../../src/native-addon.js';
import { createDetachedMount } from '../../src/mount/detached.js';
import { MiniFuse } from './mini-fuse.js';

const OP_READ = 15;
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
};

test('fuseBackingOpen on a device without a session is EPERM; bad fds are EBADF', () => {
  const dev = openSync('/dev/fuse', c.O_RDWR | c.O_CLOEXEC);
  assert.is(
    code(() => native.fuseBackingOpen(dev, 0)),
    'EPERM',
  );
  assert.is(
    code(() => native.fuseDevClone(dev, 9999)),
    'EINVAL',
  );
  closeSync(dev);
});

test('passthrough: backing ids serve READ in the kernel; clone attaches a second device', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-backing-'));
  try {
    writeFileSync(join(dir, 'blob'), 'bytes from the backing file');
    const state: { backing?: number } = {};
    const fs = new MiniFuse(
      { f: 'bytes from the backing file' },
      { passthrough: true, backingFor: () => state.backing },
    );
    const m = await createDetachedMount({ handler: fs });
    await readFile(`/proc/self/fd/${m.mountFd}/f`).catch(() => undefined); // INIT done
    assert.ok(fs.passthroughGranted, `kernel 7.${fs.kernelMinor} offered passthrough`);

    const file = openSync(join(dir, 'blob'), 'r');
    const backing = native.fuseBackingOpen(m.devFd, file);
    state.backing = backing;
    assert.ok(backing > 0);
    closeSync(file); // the backing id holds its own reference
    const readsBefore = fs.seen(OP_READ);
    assert.is(await readFile(`/proc/self/fd/${m.mountFd}/f`, 'utf8'), 'bytes from the backing file');
    assert.is(fs.seen(OP_READ), readsBefore, 'READ never reached userspace');
    native.fuseBackingClose(m.devFd, backing);
    assert.is(
      code(() => native.fuseBackingClose(m.devFd, backing)),
      'ENOENT',
    );

    const clone = openSync('/dev/fuse', c.O_RDWR | c.O_CLOEXEC);
    native.fuseDevClone(clone, m.devFd);
    assert.is(
      code(() => native.fuseDevClone(clone, m.devFd)),
      'EINVAL',
      'already attached',
    );
    closeSync(clone);

    closeSync(m.mountFd);
    assert.equal(await m.session.ended, { reason: 'unmounted' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
