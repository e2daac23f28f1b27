import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { hookArgs } from '../../src/spec/hook-injection.js';
import { hooksDConfigs, installHooks } from '../../src/spec/hooks-d.js';

const setup = {
  hookPath: '/usr/lib/strata/strata-hook',
  socketPath: '/run/s.sock',
  daemonArgv: ['/usr/bin/node', '/m.js', 'daemon'],
};

test('one annotation-triggered entry per stage; only createRuntime carries the daemon argv', () => {
  const configs = hooksDConfigs(setup);
  assert.equal(Object.keys(configs).sort(), [
    'strata-create-container.json',
    'strata-create-runtime.json',
    'strata-poststop.json',
  ]);
  const rt = configs['strata-create-runtime.json'];
  assert.equal(rt.stages, ['createRuntime']);
  assert.equal(rt.hook.args, ['strata-hook', 'createRuntime', '/usr/bin/node', '/m.js', 'daemon']);
  assert.equal(rt.hook.env, ['STRATA_SOCKET=/run/s.sock']);
  assert.equal(configs['strata-poststop.json'].hook.args, ['strata-hook', 'poststop']);
  const [[key, value]] = Object.entries(rt.when.annotations ?? {});
  assert.ok(new RegExp(key).test('org.strata.image') && !new RegExp(key).test('orgXstrataXimage'));
  assert.ok(new RegExp(value).test('sha256:ab') && !new RegExp(value).test(''));
  assert.equal(hookArgs('createContainer', ['x']), ['strata-hook', 'createContainer']);
});

test('installHooks writes the files, replacing older ones, with nothing else left', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-hooksd-'));
  try {
    installHooks(dir, setup);
    const paths = installHooks(dir, { ...setup, socketPath: '/other.sock' });
    assert.equal(readdirSync(dir).sort(), paths.map((p) => p.slice(dir.length + 1)).sort());
    const cc = JSON.parse(readFileSync(join(dir, 'strata-create-container.json'), 'utf8'));
    assert.equal(cc.hook.env, ['STRATA_SOCKET=/other.sock']);
    assert.is(cc.version, '1.0.0');
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('a relative hook path is refused by the schema', () => {
  assert.throws(() => hooksDConfigs({ ...setup, hookPath: 'strata-hook' }), /hook\/path/);
});

test.run();
