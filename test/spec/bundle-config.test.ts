import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../../src/errors.js';
import { loadBundleConfig, parseHookState, validateRuntimeConfigFile } from '../../src/spec/bundle-config.js';
import { buildRuntimeConfig } from '../../src/spec/runtime-config.js';
import { officialErrors } from './official-schema.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-bundle-config-'));

function bundle(name: string, content?: string): string {
  const b = join(dir, name);
  mkdirSync(b);
  if (content !== undefined) writeFileSync(join(b, 'config.json'), content);
  return b;
}

test('a config strata built loads back from a bundle', () => {
  const built = buildRuntimeConfig({ config: { Cmd: ['/bin/sh'] } }, { hostEnv: {} }, () => undefined);
  const b = bundle('ok', JSON.stringify(built));
  assert.equal(loadBundleConfig(b), built);
});

test('a config podman wrote (seccomp, resources, cgroupsPath) loads too', () => {
  const podmanLike = {
    ociVersion: '1.0.2-dev',
    process: { cwd: '/', args: ['id'], user: { uid: 0, gid: 0 } },
    root: { path: '/var/lib/containers/x/merged' },
    linux: {
      resources: { pids: { limit: 2048 } },
      cgroupsPath: '/libpod_parent/x',
      seccomp: { defaultAction: 'SCMP_ACT_ERRNO' },
    },
  };
  assert.equal(officialErrors(podmanLike), []);
  assert.is(
    loadBundleConfig(bundle('podman', JSON.stringify(podmanLike))).root.path,
    '/var/lib/containers/x/merged',
  );
});

test('errors name the bundle: missing, not JSON, no root.path', () => {
  const missing = bundle('missing');
  assert.throws(
    () => loadBundleConfig(missing),
    (e: Error) => e instanceof NotFoundError && e.message === `config.json of bundle ${missing}: not found`,
  );
  const bad = bundle('bad', '{"ociVersion":');
  assert.throws(
    () => loadBundleConfig(bad),
    (e: Error) =>
      e instanceof InvalidArgumentError &&
      e.message.startsWith(`config.json of bundle ${bad} is not valid JSON`),
  );
  const noRoot = bundle('noroot', JSON.stringify({ ociVersion: '1.0.2', root: {} }));
  assert.throws(
    () => validateRuntimeConfigFile(join(noRoot, 'config.json')),
    (e: Error) =>
      e instanceof InvalidArgumentError &&
      /^config\.json of bundle .*noroot is invalid: \/root must have required property 'path'/.test(
        e.message,
      ),
  );
});

test('hook state: runc and crun createRuntime state, podman poststop without pid', () => {
  const s = parseHookState(
    JSON.stringify({
      ociVersion: '1.0.2',
      id: 'c1',
      status: 'creating',
      pid: 4242,
      bundle: '/run/b',
      annotations: { 'org.strata.image': 'busybox' },
    }),
  );
  assert.is(s.annotations?.['org.strata.image'], 'busybox');
  const stopped = { ociVersion: '1.0.2-dev', id: 'c1', status: 'stopped', bundle: '/run/b' };
  assert.is(parseHookState(Buffer.from(JSON.stringify(stopped))).pid, undefined);
  assert.equal(officialErrors(stopped, 'state-schema.json'), []);
});

test('hook state: a relative bundle or unknown status is refused', () => {
  assert.throws(
    () => parseHookState('{"ociVersion":"1","id":"c","status":"created","bundle":"rel"}'),
    /OCI state on the hook's stdin is invalid: \/bundle/,
  );
  assert.throws(
    () => parseHookState('{"ociVersion":"1","id":"c","status":"dancing","bundle":"/b"}'),
    /\/status/,
  );
  assert.throws(() => parseHookState('nope'), /is not valid JSON/);
});

test('cleanup', () => {
  rmSync(dir, { recursive: true, force: true });
  assert.not.ok(existsSync(dir));
});

test.run();
