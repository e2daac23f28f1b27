// The container id rule (runc's), and that every id it accepts gets a lease id.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { leaseIdFor } from '../../src/daemon/image-lease.js';
import { parseHookState } from '../../src/spec/bundle-config.js';
import { checkContainerId, isContainerId } from '../../src/spec/container-id.js';
import { isLeaseId } from '../../src/store/layout.js';

const VALID = ['c', '.dotted', '..x', 'a+b', 'a,b', 'A_z-0.9', 'x'.repeat(255), '0'.repeat(64)];
const INVALID = ['', '.', '..', 'a/b', '../x', 'a b', 'a:b', 'é', 'a\nb', 'x'.repeat(256)];

test('runc accepts these ids, and so does strata', () => {
  for (const id of VALID) assert.ok(isContainerId(id), id);
});

test('what runc refuses is refused with a message that says the rule', () => {
  for (const id of INVALID) assert.not.ok(isContainerId(id), JSON.stringify(id));
  assert.throws(() => checkContainerId('a b'), /container id "a b" is not valid: use 1-255 letters, digits/);
});

test('every valid container id maps to a valid, stable lease id', () => {
  for (const id of VALID) {
    const lease = leaseIdFor(id);
    assert.ok(isLeaseId(lease), `${id} -> ${lease}`);
    assert.is(leaseIdFor(id), lease);
  }
  assert.is(leaseIdFor('plain-id'), 'plain-id');
  assert.match(leaseIdFor('.dotted'), /^c-[0-9a-f]{40}$/);
});

test('the id in the hook state is checked where it enters', () => {
  const state = (id: string) => JSON.stringify({ ociVersion: '1.0.2', id, status: 'creating', bundle: '/b' });
  assert.is(parseHookState(state('.dotted')).id, '.dotted');
  assert.throws(() => parseHookState(state('a:b')), /container id in the OCI state .* "a:b" is not valid/);
  assert.throws(() => parseHookState(state('..')), /".." is not valid/);
});

test.run();
