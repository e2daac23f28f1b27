import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { constants as c, native } from '../../src/native-addon.js';

test('flock: two fds of one file contend; shared locks coexist', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-flock-'));
  try {
    const path = join(dir, 'lock');
    writeFileSync(path, '');
    const a = openSync(path, 'r');
    const b = openSync(path, 'r');
    native.flock(a, c.LOCK_EX | c.LOCK_NB);
    assert.throws(
      () => native.flock(b, c.LOCK_SH | c.LOCK_NB),
      (e: NodeJS.ErrnoException) => e.code === 'EWOULDBLOCK' && e.syscall === 'flock',
    );
    native.flock(a, c.LOCK_UN);
    native.flock(a, c.LOCK_SH | c.LOCK_NB);
    native.flock(b, c.LOCK_SH | c.LOCK_NB);
    assert.throws(() => native.flock(b, c.LOCK_EX | c.LOCK_NB), /EWOULDBLOCK/);
    closeSync(a); // closing releases a's lock
    native.flock(b, c.LOCK_EX | c.LOCK_NB);
    closeSync(b);
    assert.throws(
      () => native.flock(b, c.LOCK_EX),
      (e: NodeJS.ErrnoException) => e.code === 'EBADF',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('syncfs flushes the filesystem of an fd; a bad fd is EBADF', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-syncfs-'));
  try {
    const fd = openSync(dir, 'r');
    native.syncfs(fd);
    closeSync(fd);
    assert.throws(
      () => native.syncfs(fd),
      (e: NodeJS.ErrnoException) => e.code === 'EBADF',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
