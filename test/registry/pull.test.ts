// strata image pull against a real registry (Debian's docker-registry 2.8 on 127.0.0.1, private
// storage and port), fed by skopeo from the test images: anonymous, Basic (htpasswd), token auth
// (ES256 token server: pull-only, expired token), a redirect to a second loopback address, a
// connection cut mid-blob, 429 then 200, a multi-platform index, a wrong digest, a mirror that is
// down. The pulled tree equals the archive-imported one; a failed pull leaves nothing visible.
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  DataLossError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
} from '../../src/errors.js';
import { cliArgv } from '../../src/executables.js';
import { verifyLogin } from '../../src/registry/login.js';
import { pullImage, type PullOptions } from '../../src/registry/pull.js';
import { emptyRegistriesConf, loadRegistriesConf } from '../../src/registry/registries-conf.js';
import { importImage } from '../../src/store/import.js';
import { listImages, loadTreeIndex } from '../../src/store/records.js';
import { listRefs } from '../../src/store/refs.js';
import { fsck } from '../../src/store/fsck.js';
import { openStore, type Store } from '../../src/store/store.js';
import {
  busyboxImage,
  debianAppImage,
  debianImage,
  diffTrees,
  walkTree,
  walkTreeIndex,
} from '../fixtures/images.js';
import {
  push,
  sha256,
  startBlobServer,
  startProxy,
  startRegistry,
  startTokenServer,
  type Proxy,
  type TestRegistry,
  type TokenServer,
} from '../fixtures/registry.js';

const cleanups: (() => Promise<unknown>)[] = [];
let anon: TestRegistry;
let work: string;
const BB = 'test/busybox';

async function freshStore(): Promise<Store> {
  const dir = await fs.mkdtemp(join(work, 'store-'));
  return openStore(dir);
}

/** Fast retries for tests: the behaviour, not the waits. */
const FAST: PullOptions = {
  http: { retries: 3, backoffMs: 20, timeoutMs: 5000 },
  conf: emptyRegistriesConf(),
  tlsVerify: false,
  minFree: 0,
};

/** A layer blob kept under ingest/ for the next pull to resume (src/registry/source.ts KeptBlobs). */
const KEPT = /^layer-sha256-[0-9a-f]{64}(\.partial\.[0-9]+-[0-9a-f]{12})?$/;

async function assertNothingVisible(store: Store, kept: 'allowed' | 'none' = 'allowed'): Promise<void> {
  assert.equal(await listImages(store.root), [], 'no image visible after a failed pull');
  assert.equal(await listRefs(store.root), [], 'no name visible after a failed pull');
  const ingest = await fs.readdir(store.ingestRoot).catch(() => []);
  const left = ingest.filter((n) => kept === 'none' || !KEPT.test(n));
  assert.equal(left, [], 'the pull removed its ingest dir (kept layer blobs aside)');
  const report = await fsck(store);
  assert.equal(
    report.findings.filter((f) => f.kind !== 'stale-ingest' || !KEPT.test(f.path.split('/').pop()!)),
    [],
    'fsck finds the store clean (a kept layer blob is a stale-ingest warning)',
  );
}

test.before(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'strata-pull-test-'));
  cleanups.push(() => fs.rm(work, { recursive: true, force: true }));
  anon = await startRegistry();
  cleanups.push(() => anon.stop());
  const bb = await busyboxImage();
  await push(`oci:${bb.ociLayout}:latest`, `${anon.host}/${BB}:latest`);
});

test.after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

test('anonymous pull: the pulled tree equals the archive-imported tree and umoci unpack', async () => {
  const bb = await busyboxImage();
  const store = await freshStore();
  const r = await pullImage(store, `${anon.host}/${BB}:latest`, FAST);
  assert.equal(r.names, [`${anon.host}/${BB}:latest`]);
  assert.is(r.from, `${anon.host}/${BB}`);
  const imported = await importImage(await freshStore(), `oci:${bb.ociLayout}:latest`, {
    name: 'x',
    minFree: 0,
  });
  assert.is(r.record.manifestDigest, imported.record.manifestDigest);
  assert.is(r.record.indexDigest, imported.record.indexDigest, 'same tree index as the archive import');
  const diff = diffTrees(
    await walkTree(bb.rootfs),
    await walkTreeIndex(loadTreeIndex(store.root, r.record), store.root),
  );
  assert.equal(diff, [], 'pulled tree equals umoci unpack');
  // Pulling again downloads nothing: the image is complete.
  const again = await pullImage(store, `${anon.host}/${BB}`, FAST);
  assert.ok(again.existing);
});

test('404 for a tag and an unreachable registry: clear errors naming what and where', async () => {
  const store = await freshStore();
  try {
    await pullImage(store, `${anon.host}/${BB}:nope`, FAST);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, NotFoundError);
    assert.match((err as Error).message, `${anon.host}`);
    assert.match((err as Error).message, 'nope');
  }
  try {
    await pullImage(store, `127.0.0.1:1/x:y`, FAST);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, UnavailableError);
    assert.match((err as Error).message, /127\.0\.0\.1:1.*(refused|unreachable)/);
  }
  try {
    await pullImage(store, `no-such-host.invalid/x:y`, { ...FAST, http: { ...FAST.http, retries: 0 } });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, UnavailableError);
    assert.match((err as Error).message, /no-such-host\.invalid.*(resolve|DNS)/);
  }
  await assertNothingVisible(store);
});

test('htpasswd Basic auth: refused without credentials, pulls with auth.json, wrong password named', async () => {
  const reg = await startRegistry({ htpasswd: { user: 'alice', password: 's3cret' } });
  cleanups.push(() => reg.stop());
  await push(`docker://${anon.host}/${BB}:latest`, `${reg.host}/${BB}:latest`, [
    '--src-tls-verify=false',
    '--dest-creds=alice:s3cret',
  ]);
  const store = await freshStore();
  const authFile = join(work, 'basic-auth.json');
  const env = { HOME: work, REGISTRY_AUTH_FILE: authFile };
  try {
    await pullImage(store, `${reg.host}/${BB}`, { ...FAST, credentials: { env } });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, FailedPreconditionError);
    assert.match((err as Error).message, /login/);
  }
  await fs.writeFile(
    authFile,
    JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('alice:wrong').toString('base64') } } }),
  );
  try {
    await pullImage(store, `${reg.host}/${BB}`, { ...FAST, credentials: { env } });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, FailedPreconditionError);
    assert.match((err as Error).message, /401/);
    assert.match((err as Error).message, authFile);
  }
  await assertNothingVisible(store);
  // strata login checks the credentials against the registry before saving them.
  assert.is(await verifyLogin(reg.host, 'alice', 's3cret', false), reg.host);
  let refused = '';
  await verifyLogin(reg.host, 'alice', 'nope', false).catch((e: Error) => (refused = e.message));
  assert.match(refused, `login to ${reg.host} failed`);
  // A more specific key (host/namespace) wins over the host's.
  await fs.writeFile(
    authFile,
    JSON.stringify({
      auths: {
        [reg.host]: { auth: Buffer.from('alice:wrong').toString('base64') },
        [`${reg.host}/test`]: { auth: Buffer.from('alice:s3cret').toString('base64') },
      },
    }),
  );
  const r = await pullImage(store, `${reg.host}/${BB}`, { ...FAST, credentials: { env } });
  assert.is(r.names[0], `${reg.host}/${BB}:latest`);
});

test('token auth: anonymous pull-scoped token, cached per scope, expired token refreshed once', async () => {
  const dir = await fs.mkdtemp(join(work, 'token-'));
  const ts: TokenServer = await startTokenServer(dir);
  cleanups.push(() => ts.stop());
  const reg = await startRegistry({ token: ts, storage: anon.storage });
  cleanups.push(() => reg.stop());
  const store = await freshStore();
  const r = await pullImage(store, `${reg.host}/${BB}`, FAST);
  assert.is(r.names[0], `${reg.host}/${BB}:latest`);
  const scoped = ts.requests.filter((q) => q.scope === `repository:${BB}:pull`);
  assert.is(
    scoped.length,
    1,
    `one token for the scope, reused for every request (${JSON.stringify(ts.requests)})`,
  );
  // An expired token: the registry answers 401, one fresh token, the pull goes on.
  ts.requests.length = 0;
  ts.expireNext = 1;
  const store2 = await freshStore();
  await pullImage(store2, `${reg.host}/${BB}`, FAST);
  assert.is(ts.requests.length, 2, 'the expired token was replaced once');
  // A token that grants nothing: insufficient_scope, one fresh token for the scope named.
  ts.requests.length = 0;
  ts.emptyNext = 1;
  await pullImage(await freshStore(), `${reg.host}/${BB}`, FAST);
  assert.is(ts.requests.length, 2, 'one more token after insufficient_scope');
  // Always expired: a clear failure, not a loop.
  ts.expireNext = 100;
  const store3 = await freshStore();
  try {
    await pullImage(store3, `${reg.host}/${BB}`, FAST);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, FailedPreconditionError);
    assert.match((err as Error).message, /401/);
  }
  assert.ok(ts.requests.length <= 4, `bounded token requests (${ts.requests.length})`);
  ts.expireNext = 0;
  await assertNothingVisible(store3);
});

test('token auth with credentials from a credential helper', async () => {
  const dir = await fs.mkdtemp(join(work, 'token2-'));
  const ts = await startTokenServer(dir);
  cleanups.push(() => ts.stop());
  ts.users = { bob: 'pw' };
  const reg = await startRegistry({ token: ts, storage: anon.storage });
  cleanups.push(() => reg.stop());
  const authFile = join(work, 'helper-auth.json');
  await fs.writeFile(authFile, JSON.stringify({ credHelpers: { [reg.host]: 'strata-test' } }));
  let asked = '';
  const r = await pullImage(await freshStore(), `${reg.host}/${BB}`, {
    ...FAST,
    credentials: {
      env: { HOME: work, REGISTRY_AUTH_FILE: authFile },
      helper: async (name, server) => {
        asked = `${name} ${server}`;
        return { Username: 'bob', Secret: 'pw' };
      },
    },
  });
  assert.is(asked, `strata-test ${reg.host}`);
  assert.ok(r.objectsWritten > 0);
  assert.ok(ts.requests.every((q) => q.user === 'bob'));
});

test('redirect to blob storage on another loopback address: followed, without Authorization', async () => {
  const storage = anon.storage;
  const blobs = await startBlobServer(storage, '127.0.0.2');
  cleanups.push(() => blobs.stop());
  const reg = await startRegistry({
    htpasswd: { user: 'alice', password: 's3cret' },
    storage,
    redirectTo: `http://${blobs.host}/`,
  });
  cleanups.push(() => reg.stop());
  const authFile = join(work, 'redirect-auth.json');
  await fs.writeFile(
    authFile,
    JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('alice:s3cret').toString('base64') } } }),
  );
  const r = await pullImage(await freshStore(), `${reg.host}/${BB}`, {
    ...FAST,
    credentials: { env: { HOME: work, REGISTRY_AUTH_FILE: authFile } },
  });
  assert.ok(r.objectsWritten > 0);
  assert.ok(blobs.requests.length >= 1, 'blobs came from the redirect target');
  assert.equal(
    blobs.requests.filter((q) => q.authorization !== undefined),
    [],
    'no credentials sent to the other host',
  );
});

test('a connection cut mid-blob resumes with Range; 429 then 200 retried', async () => {
  const proxy: Proxy = await startProxy(anon.host);
  cleanups.push(() => proxy.stop());
  let cut = false;
  let limited = false;
  proxy.intercept = (req, res, forward) => {
    if (!limited && req.url?.includes('/manifests/')) {
      limited = true;
      res.writeHead(429, { 'retry-after': '0' }).end();
      return;
    }
    if (!cut && req.url?.includes('/blobs/') && !req.headers.range && req.method === 'GET') {
      // The layer (the big blob): cut after 100 KB.
      forward((b, offset) => {
        if (offset + b.length > 100_000 && !cut) {
          const n = Math.max(0, 100_000 - offset);
          if (n === 0) {
            cut = true;
            return 'cut';
          }
          return b.subarray(0, n);
        }
        return b;
      });
      return;
    }
    forward();
  };
  const store = await freshStore();
  const events: string[] = [];
  const r = await pullImage(store, `${proxy.host}/${BB}`, { ...FAST, onEvent: (e) => events.push(e.type) });
  assert.ok(limited, 'the 429 was served');
  assert.ok(cut, 'the cut happened');
  assert.ok(
    proxy.requests.some((q) => q.range === 'bytes=100000-'),
    `resumed with Range (${JSON.stringify(proxy.requests.map((q) => q.range))})`,
  );
  assert.ok(events.includes('retry'));
  const bb = await busyboxImage();
  const imported = await importImage(await freshStore(), `oci:${bb.ociLayout}:latest`, {
    name: 'x',
    minFree: 0,
  });
  assert.is(r.record.indexDigest, imported.record.indexDigest);
});

test('a wrong byte in a layer: refused as DataLoss, nothing visible, fsck clean', async () => {
  const proxy = await startProxy(anon.host);
  cleanups.push(() => proxy.stop());
  proxy.intercept = (req, _res, forward) => {
    if (req.url?.includes('/blobs/'))
      forward((b, offset) => {
        if (offset === 0 && b.length > 2000) {
          const c = Buffer.from(b);
          c[1000] ^= 0xff;
          return c;
        }
        return b;
      });
    else forward();
  };
  const store = await freshStore();
  try {
    await pullImage(store, `${proxy.host}/${BB}`, FAST);
    assert.unreachable();
  } catch (err) {
    assert.ok(err instanceof DataLossError || err instanceof InvalidArgumentError, String(err));
  }
  await assertNothingVisible(store, 'none');
});

test('a blob larger than its descriptor says: refused (Content-Length, or counted when chunked), nothing visible', async () => {
  const bb = await busyboxImage();
  const top = JSON.parse(await fs.readFile(join(bb.ociLayout, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  const manifest = JSON.parse(
    await fs.readFile(join(bb.ociLayout, 'blobs/sha256', top.manifests[0].digest.slice(7)), 'utf8'),
  ) as { layers: { digest: string }[] };
  const layer = manifest.layers[0].digest;
  const real = await fs.readFile(join(bb.ociLayout, 'blobs/sha256', layer.slice(7)));
  for (const chunked of [false, true]) {
    const proxy = await startProxy(anon.host);
    cleanups.push(() => proxy.stop());
    proxy.intercept = (req, res, forward) => {
      if (!req.url?.endsWith(layer)) return forward();
      const body = Buffer.concat([real, Buffer.from('and then some')]);
      if (chunked) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write(body.subarray(0, 1000));
        res.end(body.subarray(1000));
      } else res.writeHead(200, { 'content-length': String(body.length) }).end(body);
    };
    const store = await freshStore();
    const err = await pullImage(store, `${proxy.host}/${BB}`, FAST).catch((e: unknown) => e);
    assert.instance(err, DataLossError, String(err));
    assert.match((err as Error).message, new RegExp(`more than the ${real.length} bytes`));
    await assertNothingVisible(store, 'none');
  }
});

test('manifests: over 4 MiB refused, schema 1 refused by name, Content-Type checked', async () => {
  const proxy = await startProxy(anon.host);
  cleanups.push(() => proxy.stop());
  let mode: 'big' | 'schema1' | 'ctype' = 'big';
  proxy.intercept = (req, res, forward) => {
    if (!req.url?.includes('/manifests/')) return forward();
    if (mode === 'big') {
      res.writeHead(200, {
        'content-type': 'application/vnd.oci.image.manifest.v1+json',
        'content-length': String(5 << 20),
      });
      res.end(Buffer.alloc(5 << 20, 0x20));
    } else if (mode === 'schema1') {
      res.writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' });
      res.end(JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }));
    } else {
      res.writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' });
      res.end(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json' }));
    }
  };
  const store = await freshStore();
  const expect = async (re: RegExp) => {
    try {
      await pullImage(store, `${proxy.host}/${BB}`, FAST);
      assert.unreachable();
    } catch (err) {
      assert.match((err as Error).message, re);
    }
  };
  await expect(/4194304/);
  mode = 'schema1';
  await expect(/schema 1/);
  mode = 'ctype';
  await expect(/Content-Type/);
  await assertNothingVisible(store);
});

test('multi-platform index: the platform asked for, with variant fallback', async () => {
  const bb = await busyboxImage();
  const layout = join(work, 'multi');
  await fs.cp(bb.ociLayout, layout, { recursive: true });
  const index = JSON.parse(await fs.readFile(join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string; size: number; mediaType: string }[];
  };
  const m1 = index.manifests[0];
  const blob = (d: string) => join(layout, 'blobs', 'sha256', d.slice(7));
  const manifest = JSON.parse(await fs.readFile(blob(m1.digest), 'utf8')) as {
    config: { digest: string; size: number };
  };
  const config = JSON.parse(await fs.readFile(blob(manifest.config.digest), 'utf8')) as Record<
    string,
    unknown
  >;
  const armConfig = Buffer.from(JSON.stringify({ ...config, architecture: 'arm', variant: 'v7' }));
  await fs.writeFile(blob(sha256(armConfig)), armConfig);
  const armManifest = Buffer.from(
    JSON.stringify({
      ...manifest,
      config: { ...manifest.config, digest: sha256(armConfig), size: armConfig.length },
    }),
  );
  await fs.writeFile(blob(sha256(armManifest)), armManifest);
  const imageIndex = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { ...m1, annotations: undefined, platform: { os: 'linux', architecture: 'amd64' } },
        {
          mediaType: m1.mediaType,
          digest: sha256(armManifest),
          size: armManifest.length,
          platform: { os: 'linux', architecture: 'arm', variant: 'v7' },
        },
      ],
    }),
  );
  await fs.writeFile(blob(sha256(imageIndex)), imageIndex);
  await fs.writeFile(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.index.v1+json',
          digest: sha256(imageIndex),
          size: imageIndex.length,
          annotations: { 'org.opencontainers.image.ref.name': 'latest' },
        },
      ],
    }),
  );
  await push(`oci:${layout}:latest`, `${anon.host}/test/multi:latest`, ['--all']);
  const arm = await pullImage(await freshStore(), `${anon.host}/test/multi`, {
    ...FAST,
    platform: { os: 'linux', architecture: 'arm', variant: 'v8' },
  });
  assert.is(arm.record.manifestDigest, sha256(armManifest), 'arm/v8 falls back to the arm/v7 image');
  assert.is(arm.record.architecture, 'arm');
  const amd = await pullImage(await freshStore(), `${anon.host}/test/multi`, {
    ...FAST,
    platform: { os: 'linux', architecture: 'amd64' },
  });
  assert.is(amd.record.manifestDigest, m1.digest);
  try {
    await pullImage(await freshStore(), `${anon.host}/test/multi`, {
      ...FAST,
      platform: { os: 'linux', architecture: 's390x' },
    });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, NotFoundError);
    assert.match((err as Error).message, /linux\/amd64, linux\/arm\/v7/);
  }
});

test('registries.conf: a mirror that is down falls back to the registry; blocked refused; short names searched', async () => {
  const confFile = join(work, 'registries.conf');
  await fs.writeFile(
    confFile,
    [
      `unqualified-search-registries = ["${anon.host}"]`,
      '[[registry]]',
      `location = "${anon.host}"`,
      'insecure = true',
      '[[registry.mirror]]',
      'location = "127.0.0.1:1"',
      'insecure = true',
      '[[registry]]',
      'location = "blocked.example"',
      'blocked = true',
    ].join('\n'),
  );
  const conf = await loadRegistriesConf([confFile]);
  const failed: string[] = [];
  const store = await freshStore();
  const r = await pullImage(store, `${anon.host}/${BB}`, {
    ...FAST,
    tlsVerify: undefined,
    conf,
    onEvent: (e) => e.type === 'source-failed' && failed.push(e.from),
  });
  assert.equal(failed, [`127.0.0.1:1/${BB}`]);
  assert.ok(r.objectsWritten > 0);
  // A short name: searched in unqualified-search-registries, named both ways.
  const short = await pullImage(await freshStore(), BB, { ...FAST, tlsVerify: undefined, conf });
  assert.equal(short.names, [`${anon.host}/${BB}:latest`, `${BB}:latest`]);
  try {
    await pullImage(store, 'blocked.example/x', { ...FAST, tlsVerify: undefined, conf });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, FailedPreconditionError);
    assert.match((err as Error).message, /blocked/);
  }
});

test('a server that stalls: timeout naming the host, resumed when it comes back; nothing visible on failure', async () => {
  const bb = await busyboxImage();
  const top = JSON.parse(await fs.readFile(join(bb.ociLayout, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  const layer = (
    JSON.parse(
      await fs.readFile(join(bb.ociLayout, 'blobs/sha256', top.manifests[0].digest.slice(7)), 'utf8'),
    ) as {
      layers: { digest: string }[];
    }
  ).layers[0].digest;
  const proxy = await startProxy(anon.host);
  cleanups.push(() => proxy.stop());
  let stalls = 1;
  proxy.intercept = (req, _res, forward) => {
    if (stalls > 0 && req.url?.endsWith(layer)) {
      stalls--;
      // 50 KB, then nothing more on an open connection.
      forward((b, offset) =>
        offset >= 50_000 ? 'stall' : b.subarray(0, Math.min(b.length, 50_000 - offset)),
      );
      return;
    }
    forward();
  };
  const opts = { ...FAST, http: { retries: 2, backoffMs: 10, timeoutMs: 700 } };
  const r = await pullImage(await freshStore(), `${proxy.host}/${BB}`, opts);
  assert.ok(r.objectsWritten > 0, 'resumed after the stall');
  stalls = 100;
  const store = await freshStore();
  try {
    await pullImage(store, `${proxy.host}/${BB}`, opts);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, UnavailableError);
    assert.match((err as Error).message, `${proxy.host} stalled`);
  }
  await assertNothingVisible(store);
});

/**
 * `strata image pull` of BB (the CLI, a child process) through a proxy whose blob GETs stall after
 * `bytes` bytes until `release()`; `exited` resolves with its exit code (128 for a signal).
 */
async function cliPullStalledAfter(bytes: number) {
  const proxy = await startProxy(anon.host);
  cleanups.push(() => proxy.stop());
  let stall = true;
  proxy.intercept = (req, _res, forward) => {
    if (stall && req.url?.includes('/blobs/') && req.method === 'GET')
      forward((b, offset) => (offset > bytes ? 'stall' : b));
    else forward();
  };
  const store = await freshStore();
  const [cmd, ...args] = cliArgv([
    '--root',
    store.root,
    'image',
    'pull',
    '--tls-verify=false',
    `${proxy.host}/${BB}`,
  ]);
  const child = spawn(cmd, args, { stdio: 'ignore', env: { ...process.env, STRATA_MIN_FREE: '0' } });
  const exited = new Promise<number | null>((r) =>
    child.on('exit', (code, sig) => r(code ?? (sig ? 128 : null))),
  );
  return { proxy, store, child, exited, release: () => (stall = false) };
}

test('Ctrl-C during a pull (the CLI): nothing visible, fsck clean, the next pull succeeds', async () => {
  const { proxy, store, child, exited, release } = await cliPullStalledAfter(20_000);
  for (let i = 0; i < 200 && proxy.requests.filter((q) => q.url.includes('/blobs/')).length < 2; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 200));
  child.kill('SIGINT');
  assert.ok((await exited) !== 0, 'the pull was interrupted');
  assert.equal(await listImages(store.root), []);
  assert.equal(await listRefs(store.root), []);
  assert.is((await fsck(store)).errors, 0, 'fsck: no errors (a stale ingest dir is a warning, swept by gc)');
  release();
  const r = await pullImage(store, `${proxy.host}/${BB}`, FAST);
  assert.ok(r.objectsWritten > 0);
});

test('a pull killed mid-blob (SIGKILL) resumes: the next pull asks only for the rest with Range', async () => {
  const { proxy, store, child, exited, release } = await cliPullStalledAfter(300_000);
  // Wait until the kept partial file holds the bytes the proxy let through, then kill.
  const partialSize = async () => {
    const names = await fs.readdir(store.ingestRoot).catch(() => [] as string[]);
    const part = names.find((n) => n.includes('.partial.'));
    return part ? (await fs.stat(join(store.ingestRoot, part))).size : 0;
  };
  for (let i = 0; i < 400 && (await partialSize()) <= 300_000; i++)
    await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGKILL');
  await exited;
  const held = await partialSize();
  assert.ok(held > 300_000, `the killed pull kept ${held} bytes`);
  assert.equal(await listImages(store.root), [], 'nothing visible after the kill');
  assert.equal(await listRefs(store.root), []);
  assert.is((await fsck(store)).errors, 0, 'fsck: no errors (the kept blob is a stale-ingest warning)');

  release();
  proxy.requests.length = 0;
  const events: string[] = [];
  const r = await pullImage(store, `${proxy.host}/${BB}`, { ...FAST, onEvent: (e) => events.push(e.type) });
  assert.ok(events.includes('resume'), `a resume event (${events.join(',')})`);
  const ranges = proxy.requests.filter((q) => q.url.includes('/blobs/') && q.range).map((q) => q.range);
  assert.equal(ranges, [`bytes=${held}-`], 'the rest of the blob, from what the killed pull kept');
  const bb = await busyboxImage();
  const imported = await importImage(await freshStore(), `oci:${bb.ociLayout}:latest`, {
    name: 'x',
    minFree: 0,
  });
  assert.is(r.record.indexDigest, imported.record.indexDigest, 'the same tree as an archive import');
  assert.equal(
    (await fs.readdir(store.ingestRoot)).filter((n) => KEPT.test(n)),
    [],
    'the kept blob is removed once committed (the killed import dir is left for gc)',
  );
});

test('TLS: an unverifiable certificate is refused naming the host; accepted only when marked insecure', async () => {
  const { createServer } = await import('node:https');
  const { execa } = await import('execa');
  const dir = await fs.mkdtemp(join(work, 'tls-'));
  await execa('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    join(dir, 'k'),
    '-out',
    join(dir, 'c'),
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
  ]);
  const server = createServer(
    { key: await fs.readFile(join(dir, 'k')), cert: await fs.readFile(join(dir, 'c')) },
    (_req, res) => {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end('{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}');
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  const host = `127.0.0.1:${(server.address() as { port: number }).port}`;
  const store = await freshStore();
  try {
    await pullImage(store, `${host}/x/y`, { ...FAST, tlsVerify: undefined });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, UnavailableError);
    assert.match((err as Error).message, `registry ${host}: TLS failed`);
    assert.match((err as Error).message, 'insecure');
  }
  try {
    await pullImage(store, `${host}/x/y`, { ...FAST, tlsVerify: false });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, NotFoundError, String(err));
    assert.match((err as Error).message, 'NAME_UNKNOWN');
  }
  await assertNothingVisible(store);
});

test('the free-space floor: refused before any layer, nothing visible', async () => {
  const store = await freshStore();
  try {
    await pullImage(store, `${anon.host}/${BB}`, { ...FAST, minFree: '100%' });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, FailedPreconditionError);
    assert.match((err as Error).message, /free-space floor/);
  }
  await assertNothingVisible(store);
});

test('a store holding the base image: only the new layer is downloaded, the tree equals the archive import', async () => {
  const [deb, app] = [await debianImage(), await debianAppImage()];
  await push(`oci:${deb.ociLayout}:latest`, `${anon.host}/test/debian:latest`);
  await push(`oci:${app.ociLayout}:latest`, `${anon.host}/test/debian-app:latest`);
  const proxy = await startProxy(anon.host);
  cleanups.push(() => proxy.stop());
  const store = await freshStore();
  await pullImage(store, `${proxy.host}/test/debian`, FAST);
  const appManifest = JSON.parse(
    await fs.readFile(
      join(
        app.ociLayout,
        'blobs/sha256',
        (
          JSON.parse(await fs.readFile(join(app.ociLayout, 'index.json'), 'utf8')) as {
            manifests: { digest: string }[];
          }
        ).manifests[0].digest.slice(7),
      ),
      'utf8',
    ),
  ) as { layers: { digest: string }[] };
  proxy.requests.length = 0;
  const reused: number[] = [];
  const r = await pullImage(store, `${proxy.host}/test/debian-app`, {
    ...FAST,
    onProgress: (p) => p.phase === 'reuse' && reused.push(p.layers),
  });
  assert.equal(reused, [1], 'the base layer came from the stored debian image');
  const blobGets = proxy.requests
    .filter((q) => q.url.includes('/blobs/') && q.method === 'GET')
    .map((q) => q.url.split('/blobs/')[1]);
  assert.not.ok(
    blobGets.includes(appManifest.layers[0].digest),
    `the base layer was not downloaded (${blobGets.join(', ')})`,
  );
  assert.ok(blobGets.includes(appManifest.layers[1].digest), 'the new layer was');
  const imported = await importImage(await freshStore(), `oci:${app.ociLayout}:latest`, {
    name: 'x',
    minFree: 0,
  });
  assert.is(
    r.record.indexDigest,
    imported.record.indexDigest,
    'same tree as importing debian-app from its archive',
  );
  const diff = diffTrees(
    await walkTree(app.rootfs),
    await walkTreeIndex(loadTreeIndex(store.root, r.record), store.root),
  );
  assert.equal(diff, []);
});

test.run();
