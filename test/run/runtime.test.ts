import { test } from 'uvu';
import * as assert from 'uvu/assert';

import {
  CGROUP2_SUPER_MAGIC,
  isHybridCgroups,
  runtimeCommand,
  selectRuntime,
} from '../../src/run/runtime.js';

const TMPFS = 0x01021994;

test('hybrid = cgroup2 only at unified/; pure v2 and pure v1 are not', () => {
  assert.ok(isHybridCgroups({ top: TMPFS, unified: CGROUP2_SUPER_MAGIC }));
  assert.not.ok(isHybridCgroups({ top: CGROUP2_SUPER_MAGIC }));
  assert.not.ok(isHybridCgroups({ top: TMPFS }));
});

test('crun is wrapped in a private cgroup2 namespace only on a hybrid host; runc never', () => {
  const hybrid = selectRuntime('/r', 'crun', { top: TMPFS, unified: CGROUP2_SUPER_MAGIC });
  const [cmd, args] = runtimeCommand(hybrid, ['state', 'x']);
  assert.match(cmd, /unshare$/);
  assert.equal(args.slice(-5), [hybrid.binary, '--root', '/r/crun', 'state', 'x']);
  const v2 = selectRuntime('/r', 'crun', { top: CGROUP2_SUPER_MAGIC });
  assert.equal(runtimeCommand(v2, ['state', 'x']), [v2.binary, ['--root', '/r/crun', 'state', 'x']]);
  const runc = selectRuntime('/r', 'runc', { top: TMPFS, unified: CGROUP2_SUPER_MAGIC });
  assert.match(runtimeCommand(runc, ['list'])[0], /runc$/);
});

test('the default prefers crun when it works here', () => {
  assert.is(selectRuntime('/r', undefined, { top: TMPFS, unified: CGROUP2_SUPER_MAGIC }).name, 'crun');
});

test.run();
