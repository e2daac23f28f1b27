import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { native } from '../../src/native-addon.js';
import { fdSnapshot, fdsLeftSince } from './mini-fuse.js';

function cloexec(fd: number): boolean {
  const flags = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^flags:\s+(\d+)/m)![1];
  return (parseInt(flags, 8) & 0o2000000) !== 0; // O_CLOEXEC as fdinfo shows it
}

test('socketpair + sendFds/recvFds pass a real open file', () => {
  const fdsBefore = fdSnapshot();
  const dir = mkdtempSync(join(tmpdir(), 'strata-fds-'));
  try {
    writeFileSync(join(dir, 'f'), 'passed along');
    const [a, b] = native.socketpair();
    assert.ok(cloexec(a) && cloexec(b));
    const file = openSync(join(dir, 'f'), 'r');
    assert.is(native.sendFds(a, Buffer.from('hello'), [file]), 5);
    closeSync(file);
    const got = native.recvFds(b, 64, 4);
    assert.is(got.data.toString(), 'hello');
    assert.is(got.fds.length, 1);
    assert.ok(cloexec(got.fds[0]), 'received fds are close-on-exec');
    assert.is(readFileSync(got.fds[0], 'utf8'), 'passed along');
    closeSync(got.fds[0]);

    native.sendFds(a, Buffer.from('x'), []);
    assert.equal(native.recvFds(b, 64, 4), { data: Buffer.from('x'), fds: [] });

    // More fds than the receiver allows: nothing leaks, the caller hears about it.
    const f1 = openSync(join(dir, 'f'), 'r');
    native.sendFds(a, Buffer.from('y'), [f1, f1, f1]);
    closeSync(f1);
    assert.throws(
      () => native.recvFds(b, 64, 1),
      (e: NodeJS.ErrnoException) => e.code === 'EMSGSIZE',
    );

    closeSync(a);
    assert.is(native.recvFds(b, 64, 4).data.length, 0, 'end of stream');
    closeSync(b);
    assert.equal(fdsLeftSince(fdsBefore), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sendFds rejects bad arguments and reports socket errors', () => {
  const [a, b] = native.socketpair();
  assert.throws(() => native.sendFds(a, Buffer.alloc(0), []), /at least one byte/);
  assert.throws(() => native.sendFds(a, 'x' as unknown as Buffer, []), /Buffer/);
  assert.throws(
    () => native.sendFds(a, Buffer.from('x'), [9999]),
    (e: NodeJS.ErrnoException) => e.code === 'EBADF',
  );
  closeSync(b);
  assert.throws(
    () => native.sendFds(a, Buffer.from('x'), []),
    (e: NodeJS.ErrnoException) => e.code === 'EPIPE',
  );
  closeSync(a);
  assert.throws(() => fstatSync(a));
});

test.run();
