// Injecting the strata hooks into a config.json strata did not write (podman's, containerd's):
// only the hooks change, the runtime's own hooks at other stages stay, and the result is still a
// valid runtime config.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import type { RuntimeConfig } from '../../src/schema/generated/runtime-config.js';
import { validate } from '../../src/schema/validate.js';
import { injectStrataHooks, withStrataHooks } from '../../src/spec/hook-injection.js';
import { officialErrors } from './official-schema.js';

const setup = { hookPath: '/opt/strata-hook', socketPath: '/run/s.sock', daemonArgv: ['/usr/bin/node', 'd'] };

const foreign: RuntimeConfig = {
  ociVersion: '1.0.2',
  process: { user: { uid: 0, gid: 0 }, args: ['sh'], cwd: '/' },
  root: { path: '/var/lib/containers/x/merged' },
  hooks: { prestart: [{ path: '/usr/libexec/podman/other-hook' }] },
  annotations: { 'org.strata.image': 'sha256:' + 'a'.repeat(64) },
};

test('all three stages by default; the config is otherwise untouched and still valid', () => {
  const before = JSON.stringify(foreign);
  const config = injectStrataHooks(foreign, setup);
  assert.is(JSON.stringify(foreign), before, 'the input is not modified');
  assert.equal(config.hooks?.prestart, foreign.hooks?.prestart);
  assert.equal(config.hooks?.createRuntime, [
    {
      path: '/opt/strata-hook',
      args: ['strata-hook', 'createRuntime', '/usr/bin/node', 'd'],
      env: ['STRATA_SOCKET=/run/s.sock'],
      timeout: 30,
    },
  ]);
  assert.equal(config.hooks?.createContainer?.[0].args, ['strata-hook', 'createContainer']);
  assert.equal(config.hooks?.poststop?.[0].args, ['strata-hook', 'poststop']);
  assert.equal({ ...config, hooks: foreign.hooks }, foreign);
  validate('runtime-config', config, 'injected config');
  assert.equal(officialErrors(config), []);
});

test('only the stages asked for', () => {
  const hooks = withStrataHooks(undefined, { ...setup, timeout: 5 }, ['createContainer']);
  assert.equal(Object.keys(hooks), ['createContainer']);
  assert.is(hooks.createContainer?.[0].timeout, 5);
});

test.run();
