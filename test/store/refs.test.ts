import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InvalidArgumentError } from '../../src/errors.js';
import { listRefs, normalizeName, parseReference, readRef, removeRef, setRef } from '../../src/store/refs.js';
import { tempStore } from './import-helpers.js';

const D = 'sha256:' + 'ab'.repeat(32);

test('names get :latest; registries with ports keep their colon', () => {
  assert.is(normalizeName('busybox'), 'busybox:latest');
  assert.is(normalizeName('busybox:1.36'), 'busybox:1.36');
  assert.is(normalizeName('localhost:5000/app'), 'localhost:5000/app:latest');
  assert.is(normalizeName('localhost:5000/app:v2'), 'localhost:5000/app:v2');
  for (const bad of ['', 'Up', 'a b', 'x:', 'x:!', '../x', '/x']) {
    assert.throws(
      () => normalizeName(bad),
      (e: unknown) => e instanceof InvalidArgumentError,
      bad,
    );
  }
});

test('references: full digest, bare hex, short digest, names', () => {
  assert.equal(parseReference(D), { kind: 'digest', digest: D });
  assert.equal(parseReference('ab'.repeat(32)), { kind: 'digest', digest: D });
  assert.equal(parseReference('abab12'), { kind: 'name', name: 'abab12:latest', shortDigest: 'abab12' });
  assert.equal(parseReference('sha256:abab'), { kind: 'name', name: '', shortDigest: 'abab' });
  assert.equal(parseReference('debian:12'), { kind: 'name', name: 'debian:12', shortDigest: undefined });
  assert.throws(
    () => parseReference('sha256:xyz'),
    (e: unknown) => e instanceof InvalidArgumentError,
  );
});

test('refs round-trip through files, names with / and : included', async () => {
  const { store, cleanup } = await tempStore();
  try {
    await setRef(store.root, 'localhost:5000/a/b:v1', D);
    assert.is(await readRef(store.root, 'localhost:5000/a/b:v1'), D);
    assert.equal(
      (await listRefs(store.root)).map((r) => [r.name, r.digest]),
      [['localhost:5000/a/b:v1', D]],
    );
    assert.ok(await removeRef(store.root, 'localhost:5000/a/b:v1'));
    assert.not.ok(await removeRef(store.root, 'localhost:5000/a/b:v1'));
    assert.is(await readRef(store.root, 'localhost:5000/a/b:v1'), undefined);
  } finally {
    await cleanup();
  }
});

test.run();
