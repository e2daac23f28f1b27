// Issue 7 item 13: container ids that runc accepts but that are no lease file name (".dotted",
// "pod+ctr,1") run a strata bundle, their lease taken and released; an id outside runc's rule that crun lets through ("a:b") is
// refused where it enters strata, the hook, with the rule in the message — not later by the lease.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import {
  assertNoLeaks,
  bundle,
  closeDaemonEnv,
  openDaemonEnv,
  runContainer,
  type DaemonEnv,
} from '../integration/harness.js';

let d: DaemonEnv;
test.before(async () => {
  d = await openDaemonEnv(['busybox']);
});
test.after(() => closeDaemonEnv(d));

const run = { entrypoint: ['/bin/sh'], command: ['-c', 'echo ran'] };

// crun refuses a leading dot itself (its session keyring is named after the id, and the kernel
// keeps names starting with "." for itself: EPERM), so crun runs an id with "+" and ",", which
// are not lease-id characters either.
const IDS = { runc: '.dotted', crun: 'pod+ctr,1' } as const;

for (const runtime of ['runc', 'crun'] as const) {
  test(`${runtime}: a valid id that is no lease id (${IDS[runtime]}) runs and leaves nothing`, async () => {
    const id = IDS[runtime];
    const r = await runContainer(runtime, await bundle(d.env, 'busybox', run), id);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, 'ran');
    await assertNoLeaks(d.env, d.mountsBefore);
    assert.match(readFileSync(d.env.logFile, 'utf8'), `container ${id}: released`);
  });
}

test('crun: an id outside runc’s rule is refused by the hook with the rule', async () => {
  const r = await runContainer('crun', await bundle(d.env, 'busybox', run), 'a:b');
  assert.is.not(r.code, 0);
  assert.not.match(r.stdout, 'ran');
  assert.match(
    r.stderr + readFileSync(d.env.logFile, 'utf8'),
    /"a:b" is not valid: use 1-255 letters, digits/,
  );
  await assertNoLeaks(d.env, d.mountsBefore);
});

test.run();
