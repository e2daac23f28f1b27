import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { leaseIdFor } from '../../src/daemon/image-lease.js';
import { validate } from '../../src/schema/validate.js';

test('container ids become valid lease ids: as they are when allowed, else a stable hash', () => {
  assert.is(leaseIdFor('runc-busybox-1'), 'runc-busybox-1');
  const odd = leaseIdFor('pod+ctr:1');
  assert.match(odd, /^c-[0-9a-f]{40}$/);
  assert.is(leaseIdFor('pod+ctr:1'), odd, 'stable');
  assert.is.not(leaseIdFor('pod+ctr:2'), odd);
  assert.is(leaseIdFor('x'.repeat(129)).length, 42);
  const lease = { id: odd, image: `sha256:${'a'.repeat(64)}`, createdAt: new Date().toISOString() };
  assert.ok(validate('lease', lease));
});

test.run();
