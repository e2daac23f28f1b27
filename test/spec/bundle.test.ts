// writeBundle against a real stored image: config.json validates against the official
// runtime-spec schema and carries the hooks, the annotation and the socket.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { writeBundle } from '../../src/spec/bundle.js';
import type { RuntimeConfig } from '../../src/schema/generated/runtime-config.js';
import { resolveImage } from '../../src/store/records.js';
import { makeEnv, removeEnv, type Env } from '../integration/harness.js';
import { officialErrors } from './official-schema.js';

let env: Env;
test.before(async () => {
  env = await makeEnv(['busybox']);
});
test.after(() => removeEnv(env));

test('a bundle: empty rootfs, /etc files, hooks with absolute paths, the image digest', async () => {
  const dir = join(env.dir, 'b');
  const digest = (await resolveImage(env.storeRoot, 'busybox')).manifestDigest;
  const result = await writeBundle({
    storeRoot: env.storeRoot,
    image: 'busybox',
    dir,
    run: { user: 'app', hostname: 'box', readOnly: true },
    socketPath: '/run/x.sock',
    hookPath: '/opt/strata-hook',
    daemonArgv: ['/usr/bin/node', '/opt/main.js', 'daemon'],
  });
  assert.is(result.manifestDigest, digest);
  assert.equal(readdirSync(dir).sort(), ['config.json', 'hostname', 'hosts', 'resolv.conf', 'rootfs']);
  assert.equal(readdirSync(join(dir, 'rootfs')), []);
  assert.is(readFileSync(join(dir, 'hostname'), 'utf8'), 'box\n');
  assert.match(readFileSync(join(dir, 'hosts'), 'utf8'), '127.0.1.1\tbox');
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as RuntimeConfig;
  assert.equal(officialErrors(config), []);
  assert.is(config.annotations?.['org.strata.image'], digest);
  assert.equal(config.root, { path: 'rootfs', readonly: true });
  assert.equal(config.process?.user?.uid, 1000, 'user resolved through the image /etc/passwd');
  const hooks = config.hooks!;
  assert.equal(hooks.createRuntime?.[0].args, [
    'strata-hook',
    'createRuntime',
    '/usr/bin/node',
    '/opt/main.js',
    'daemon',
  ]);
  assert.equal(hooks.createContainer?.[0].args, ['strata-hook', 'createContainer']);
  assert.equal(hooks.poststop?.[0].env, ['STRATA_SOCKET=/run/x.sock']);
  assert.is(hooks.createContainer?.[0].path, '/opt/strata-hook');
  const etcHosts = config.mounts?.find((m) => m.destination === '/etc/hosts');
  assert.is(etcHosts?.source, join(dir, 'hosts'));
});

test('an unknown image is a NotFound error naming it', async () => {
  try {
    await writeBundle({
      storeRoot: env.storeRoot,
      image: 'nope:latest',
      dir: join(env.dir, 'x'),
      run: {},
      socketPath: '/s',
      hookPath: '/h',
    });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, 'no image named "nope:latest"');
  }
});

test.run();
