import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import {
  checkName,
  detachRecord,
  listIds,
  lookupContainer,
  newContainerId,
  readRecord,
  removeRecord,
  reserveName,
  updateRecord,
  writeRecord,
  type ContainerRecord,
} from '../../src/run/record.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-run-record-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function record(name: string): ContainerRecord {
  return {
    id: newContainerId(),
    name,
    image: 'busybox',
    imageDigest: `sha256:${'a'.repeat(64)}`,
    runtime: 'runc',
    command: ['true'],
    created: new Date().toISOString(),
    detached: false,
    autoRemove: false,
    stopSignal: 'SIGTERM',
  };
}

test('a name is taken once; lookup by name, id and prefix; removal frees it', () => {
  const r = record('web');
  reserveName(dir, 'web', r.id);
  writeRecord(dir, r);
  assert.throws(() => reserveName(dir, 'web', newContainerId()), /"web" is already in use by container/);
  assert.is(lookupContainer(dir, 'web'), r.id);
  assert.is(lookupContainer(dir, r.id), r.id);
  assert.is(lookupContainer(dir, r.id.slice(0, 6)), r.id);
  assert.equal(readRecord(dir, r.id), r);
  removeRecord(dir, r);
  assert.throws(() => lookupContainer(dir, 'web'), /no container named or with id "web"/);
  assert.not.ok(updateRecord(dir, { ...r, exitCode: 1 }), 'a removed record is not recreated');
});

test('detachRecord: the record and its name are gone at once, the directory is left to delete', () => {
  const trash = join(dir, 'trash');
  const r = record('detached-one');
  reserveName(dir, 'detached-one', r.id);
  writeRecord(dir, r);
  mkdirSync(join(dir, 'containers', r.id, 'bundle', 'rootfs', 'etc'), { recursive: true });
  writeFileSync(join(dir, 'containers', r.id, 'bundle', 'rootfs', 'etc', 'hosts'), '');
  const moved = detachRecord(dir, r, trash);
  assert.is(moved, join(trash, r.id));
  assert.not.ok(listIds(dir).includes(r.id), 'not listed');
  assert.equal(readdirSync(join(dir, 'containers')).includes(r.id), false, 'nothing left in containers/');
  assert.throws(() => lookupContainer(dir, 'detached-one'), /no container named or with id/);
  reserveName(dir, 'detached-one', newContainerId()); // the name is free again
  assert.ok(
    existsSync(join(moved as string, 'bundle', 'rootfs', 'etc', 'hosts')),
    'the tree was moved whole',
  );
  rmSync(moved as string, { recursive: true });
  assert.is(detachRecord(dir, r, trash), undefined, 'a second time: nothing to move');
});

test('detachRecord: a trash dir it cannot use means the directory is deleted at once', () => {
  const r = record('detached-two');
  reserveName(dir, 'detached-two', r.id);
  writeRecord(dir, r);
  writeFileSync(join(dir, 'not-a-dir'), '');
  assert.is(detachRecord(dir, r, join(dir, 'not-a-dir')), undefined);
  assert.not.ok(existsSync(join(dir, 'containers', r.id)), 'deleted');
  assert.throws(() => lookupContainer(dir, 'detached-two'), /no container named or with id/);
});

test('names are checked', () => {
  assert.throws(() => checkName('-x'), /is invalid/);
  assert.throws(() => checkName('a/b'), /is invalid/);
  assert.is(checkName('ok_name-1.2'), 'ok_name-1.2');
});

test.run();
