// The registry client's pure parts: references (docker.io normalisation), WWW-Authenticate,
// platform choice with variant fallback, registries.conf (TOML subset, drop-ins, mirrors,
// prefixes), auth.json lookup order and keys, login/logout files, Retry-After.
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  authFiles,
  authKeys,
  findCredentials,
  normalizeAuthKey,
  removeCredentials,
  saveCredentials,
} from '../../src/registry/credentials.js';
import { retryAfterMs } from '../../src/registry/http.js';
import { parsePlatform, selectPlatform } from '../../src/registry/platform.js';
import { formatReference, parseImageReference, qualify, storeName } from '../../src/registry/reference.js';
import { loadRegistriesConf, pullSources } from '../../src/registry/registries-conf.js';
import { candidates } from '../../src/registry/source.js';
import { parseToml } from '../../src/registry/toml.js';
import { parseWwwAuthenticate } from '../../src/registry/www-authenticate.js';

test('references: docker.io normalisation, hosts, tags, digests', () => {
  const d = 'sha256:' + 'a'.repeat(64);
  assert.equal(parseImageReference('debian'), {
    registry: undefined,
    repository: 'debian',
    tag: undefined,
    digest: undefined,
  });
  assert.equal(parseImageReference('docker.io/debian:12').repository, 'library/debian');
  assert.equal(parseImageReference('index.docker.io/org/app').registry, 'docker.io');
  assert.equal(parseImageReference('localhost/app').registry, 'localhost');
  assert.equal(parseImageReference('localhost:5000/a/b:t').registry, 'localhost:5000');
  assert.equal(parseImageReference('org/app').registry, undefined);
  const r = parseImageReference(`quay.io/org/app:v1@${d}`);
  assert.equal([r.registry, r.repository, r.tag, r.digest], ['quay.io', 'org/app', 'v1', d]);
  assert.is(
    formatReference(qualify(parseImageReference('debian'), 'docker.io')),
    'docker.io/library/debian:latest',
  );
  assert.is(storeName(qualify(parseImageReference(`x.io/a@${d}`), 'x')), `x.io/a:sha256-${'a'.repeat(64)}`);
  for (const bad of ['', 'UPPER/x', 'a//b', 'x:bad tag', 'x@sha256:12', 'a/b:' + 't'.repeat(200)]) {
    assert.throws(
      () => parseImageReference(bad),
      (e: unknown) => e instanceof InvalidArgumentError,
      bad,
    );
  }
});

test('WWW-Authenticate: Bearer with quoted params, Basic, several challenges, escapes', () => {
  assert.equal(
    parseWwwAuthenticate(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull"',
    ),
    [
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.docker.io/token',
          service: 'registry.docker.io',
          scope: 'repository:library/debian:pull',
        },
      },
    ],
  );
  assert.equal(parseWwwAuthenticate(['Basic realm="x"', 'Bearer realm="y", error="insufficient_scope"']), [
    { scheme: 'basic', params: { realm: 'x' } },
    { scheme: 'bearer', params: { realm: 'y', error: 'insufficient_scope' } },
  ]);
  assert.equal(parseWwwAuthenticate('Bearer realm="a\\"b",x=token'), [
    { scheme: 'bearer', params: { realm: 'a"b', x: 'token' } },
  ]);
  assert.equal(parseWwwAuthenticate(undefined), []);
  assert.ok(parseWwwAuthenticate('Bearer realm="' + 'x'.repeat(100000)).length === 1);
});

test('platforms: exact, variant fallback, no-variant entries, aliases, clear refusal', () => {
  const e = (architecture: string, variant?: string) => ({
    platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) },
    id: `${architecture}/${variant}`,
  });
  const idx = [e('amd64'), e('arm', 'v6'), e('arm', 'v7'), e('arm64', 'v8'), e('arm', 'v5')];
  assert.is(selectPlatform(idx, parsePlatform('linux/arm/v7'), 'x').id, 'arm/v7');
  assert.is(selectPlatform(idx, parsePlatform('linux/arm/v8'), 'x').id, 'arm/v7');
  assert.is(selectPlatform(idx, parsePlatform('linux/arm/v6'), 'x').id, 'arm/v6');
  assert.is(selectPlatform(idx, parsePlatform('linux/arm'), 'x').id, 'arm/v7');
  assert.is(selectPlatform(idx, parsePlatform('linux/aarch64'), 'x').id, 'arm64/v8');
  assert.is(selectPlatform(idx, parsePlatform('linux/x86_64'), 'x').id, 'amd64/undefined');
  assert.is(selectPlatform([e('arm64')], parsePlatform('linux/arm64/v8'), 'x').id, 'arm64/undefined');
  assert.throws(() => selectPlatform(idx, parsePlatform('linux/s390x'), 'idx'), /linux\/s390x.*amd64/);
  assert.throws(() => parsePlatform('linux'), /os\/arch/);
});

test('TOML subset: strings, arrays over lines, tables, arrays of tables, errors with line numbers', () => {
  const t = parseToml(
    [
      '# comment',
      'unqualified-search-registries = ["a.io", # first',
      "  'b.io']",
      '[[registry]]',
      'location = "x\\u0041"',
      'insecure = true',
      '[[registry.mirror]]',
      'location = "m"',
      '[[registry]]',
      'prefix = "p"',
      'n = 1_000',
    ].join('\n'),
    'f',
  );
  assert.equal(t['unqualified-search-registries'], ['a.io', 'b.io']);
  assert.equal(t.registry, [
    { location: 'xA', insecure: true, mirror: [{ location: 'm' }] },
    { prefix: 'p', n: 1000 },
  ]);
  assert.throws(() => parseToml('a = 1\na = 2', 'f'), /f:2: duplicate key a/);
  assert.throws(() => parseToml('a = "x', 'f'), /unterminated/);
  assert.throws(() => parseToml('a = {x = 1}', 'f'), /unsupported value/);
});

test('registries.conf: drop-ins, longest prefix, location rewrite, mirrors by pull-from-mirror, blocked', async () => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'strata-regconf-'));
  try {
    const user = join(dir, 'cfg', 'containers');
    await fs.mkdir(join(user, 'registries.conf.d'), { recursive: true });
    await fs.writeFile(
      join(user, 'registries.conf'),
      'unqualified-search-registries = ["docker.io"]\n[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n[[registry.mirror]]\nlocation = "mirror.local/hub"\n',
    );
    await fs.writeFile(
      join(user, 'registries.conf.d', '10-x.conf'),
      'unqualified-search-registries = ["quay.io", "docker.io"]\n[[registry]]\nprefix = "docker.io/library/debian"\nlocation = "internal:5000/debian-copy"\ninsecure = true\n[[registry.mirror]]\nlocation = "dm/debian"\npull-from-mirror = "digest-only"\n[[registry]]\nlocation = "*.evil.example"\nblocked = true\n',
    );
    const conf = await loadRegistriesConf(undefined, { XDG_CONFIG_HOME: join(dir, 'cfg'), HOME: dir });
    assert.equal(conf.unqualifiedSearchRegistries, ['quay.io', 'docker.io']);
    assert.equal(
      candidates('debian', conf).map((r) => `${r.registry}/${r.repository}`),
      ['quay.io/debian', 'docker.io/library/debian'],
    );
    const deb = qualify(parseImageReference('debian:12'), 'docker.io');
    assert.equal(pullSources(conf, deb), [
      { registry: 'internal:5000', repository: 'debian-copy', insecure: true, mirror: false },
    ]);
    const busy = qualify(parseImageReference('busybox'), 'docker.io');
    assert.equal(pullSources(conf, busy), [
      { registry: 'mirror.local', repository: 'hub/library/busybox', insecure: false, mirror: true },
      { registry: 'docker.io', repository: 'library/busybox', insecure: false, mirror: false },
    ]);
    const pinned = { ...deb, digest: 'sha256:' + 'b'.repeat(64) };
    assert.equal(pullSources(conf, pinned)[0], {
      registry: 'dm',
      repository: 'debian',
      insecure: false,
      mirror: true,
    });
    assert.throws(() => pullSources(conf, qualify(parseImageReference('a.evil.example/x'), 'x')), /blocked/);
    assert.equal(pullSources(conf, busy, false).at(-1)?.insecure, true, '--tls-verify=false');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('auth.json: lookup order, most specific key, docker URL keys, login/logout write podman’s file', async () => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'strata-auth-'));
  try {
    const env = { HOME: dir, XDG_RUNTIME_DIR: join(dir, 'run'), DOCKER_CONFIG: join(dir, 'docker') };
    assert.equal(authFiles(env), [
      join(dir, 'run/containers/auth.json'),
      join(dir, '.config/containers/auth.json'),
      join(dir, 'docker/config.json'),
    ]);
    assert.equal(authKeys('r.io', 'a/b/c'), ['r.io/a/b/c', 'r.io/a/b', 'r.io/a', 'r.io']);
    assert.is(normalizeAuthKey('https://index.docker.io/v1/'), 'docker.io');
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    await fs.mkdir(join(dir, 'docker'));
    await fs.writeFile(
      join(dir, 'docker/config.json'),
      JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: b64('d:1') } } }),
    );
    assert.is((await findCredentials('docker.io', 'library/x', { env }))?.username, 'd');
    assert.is(await findCredentials('other.io', 'x', { env }), undefined);
    const file = await saveCredentials('docker.io', 'p', 'pw:with:colons', env);
    assert.is(file, join(dir, 'run/containers/auth.json'));
    assert.is(((await fs.stat(file)).mode & 0o777).toString(8), '600');
    const c = await findCredentials('docker.io', 'library/x', { env });
    assert.equal([c?.username, c?.password, c?.from], ['p', 'pw:with:colons', file]);
    assert.ok(await removeCredentials('docker.io', env));
    assert.not.ok(await removeCredentials('docker.io', env));
    assert.is((await findCredentials('docker.io', 'library/x', { env }))?.username, 'd');
    await fs.writeFile(file, '{"auths": {"x": {"auth": 5}}}');
    let failed = false;
    await findCredentials('x', 'y', { env }).catch(() => (failed = true));
    assert.ok(failed, 'a malformed auth.json is an error, not anonymous');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('Retry-After: seconds, HTTP date, capped, garbage ignored', () => {
  assert.is(retryAfterMs('2'), 2000);
  assert.is(retryAfterMs('99999'), 60000);
  assert.ok((retryAfterMs(new Date(Date.now() + 5000).toUTCString()) ?? 0) > 3000);
  assert.is(retryAfterMs('soon'), undefined);
  assert.is(retryAfterMs(undefined), undefined);
});

test.run();
