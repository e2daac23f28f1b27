import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
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

test('mmapFile: the file as a read-only Buffer, valid after unlink; errors name the path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-mmap-'));
  try {
    const path = join(dir, 'index');
    const data = Buffer.alloc(3 * 4096 + 17);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    writeFileSync(path, data);
    const buf = native.mmapFile(path);
    assert.ok(Buffer.isBuffer(buf));
    assert.ok(buf.equals(readFileSync(path)));
    unlinkSync(path); // the mapping keeps the contents, as the FUSE server needs after gc
    assert.ok(buf.equals(data));

    const empty = join(dir, 'empty');
    writeFileSync(empty, '');
    assert.is(native.mmapFile(empty).length, 0);

    const missing = join(dir, 'missing');
    assert.throws(
      () => native.mmapFile(missing),
      (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.path === missing && e.message.includes(missing),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.not.ok(existsSync(dir));
});

test.run();
