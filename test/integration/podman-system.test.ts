// The fast subset of podman's own system tests (bats, Debian's libpod 4.3.1) with
// `podman --runtime strata-runtime`, the test image served from strata's store:
// scripts/podman-system-tests.sh with a filter and no runc baseline (these pass with runc on this
// host). The full set, against the baseline, runs from the script by hand.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { runCollect } from './harness.js';

const script = fileURLToPath(new URL('../../scripts/podman-system-tests.sh', import.meta.url));

test("podman's run and exec basic tests pass with strata-runtime serving the image", async () => {
  const r = await runCollect('bash', [script, '030-run', '075-exec'], {
    env: {
      ...process.env,
      STRATA_BATS_BASELINE: '0',
      STRATA_BATS_FILTER: '^podman (run|exec) - basic test',
    },
  });
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^030-run\s.*\s1\/0\/0\s*$/m);
  assert.match(r.stdout, /^075-exec\s.*\s1\/0\/0\s*$/m);
  assert.match(r.stdout, /strata-runtime: [1-9]\d* containers served from the strata store/);
});

test.run();
