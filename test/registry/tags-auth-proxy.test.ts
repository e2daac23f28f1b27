// Pull paths around the core protocol, against the real registry (docker-registry 2.8 on
// 127.0.0.1, images pushed by skopeo): `--all-tags`, docker's `identitytoken` (an OAuth2 refresh
// token POSTed to the token server), HTTP_PROXY / NO_PROXY through a tiny real forward proxy, and
// the daemon pulling for a bundle that asks (org.strata.pull: the shim's and strata-runtime's way).
import { promises as fs } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ContainerManager } from '../../src/daemon/containers.js';
import { openLog } from '../../src/daemon/log.js';
import { FailedPreconditionError, InvalidArgumentError } from '../../src/errors.js';
import { pullAllTags, pullImage, type PullOptions } from '../../src/registry/pull.js';
import { emptyRegistriesConf } from '../../src/registry/registries-conf.js';
import type { RuntimeConfig } from '../../src/schema/generated/runtime-config.js';
import { IMAGE_ANNOTATION, PULL_ANNOTATION } from '../../src/spec/annotations.js';
import { listLeases } from '../../src/store/leases.js';
import { listRefs } from '../../src/store/refs.js';
import { openStore, type Store } from '../../src/store/store.js';
import { busyboxImage } from '../fixtures/images.js';
import { push, startRegistry, startTokenServer, type TestRegistry } from '../fixtures/registry.js';

const cleanups: (() => Promise<unknown>)[] = [];
let anon: TestRegistry;
let work: string;

const FAST: PullOptions = {
  http: { retries: 2, backoffMs: 20, timeoutMs: 5000 },
  conf: emptyRegistriesConf(),
  tlsVerify: false,
  minFree: 0,
};

async function freshStore(): Promise<Store> {
  return openStore(await fs.mkdtemp(join(work, 'store-')));
}

test.before(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'strata-pull-extra-'));
  cleanups.push(() => fs.rm(work, { recursive: true, force: true }));
  anon = await startRegistry();
  cleanups.push(() => anon.stop());
  const bb = await busyboxImage();
  for (const tag of ['1.0', '2.0', 'latest']) {
    await push(`oci:${bb.ociLayout}:latest`, `${anon.host}/test/multi:${tag}`);
  }
});

test.after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

test('--all-tags: every tag of the repository is pulled and named; a tagged reference is refused', async () => {
  const store = await freshStore();
  const tags: string[] = [];
  const results = await pullAllTags(store, `${anon.host}/test/multi`, {
    ...FAST,
    onTag: (t) => tags.push(t),
  });
  assert.equal(tags.sort(), ['1.0', '2.0', 'latest']);
  assert.is(results.length, 3);
  const names = (await listRefs(store.root)).map((r) => r.name).sort();
  assert.equal(
    names,
    ['1.0', '2.0', 'latest'].map((t) => `${anon.host}/test/multi:${t}`),
  );
  // The same image under three tags: written once.
  assert.is(results.filter((r) => !r.existing).length, 1, 'one import, two names added');
  try {
    await pullAllTags(store, `${anon.host}/test/multi:1.0`, FAST);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, InvalidArgumentError);
    assert.match((err as Error).message, /without a tag/);
  }
});

test("docker's identitytoken: a refresh_token grant POSTed to the token server, never Basic", async () => {
  const ts = await startTokenServer(await fs.mkdtemp(join(work, 'token-')));
  cleanups.push(() => ts.stop());
  ts.users = { carol: 'unused' }; // GET token requests need Basic credentials
  ts.refreshTokens = { 'rt-carol-1': 'carol' };
  const reg = await startRegistry({ token: ts, storage: anon.storage });
  cleanups.push(() => reg.stop());
  const authFile = join(work, 'identity-auth.json');
  const env = { HOME: work, REGISTRY_AUTH_FILE: authFile };
  await fs.writeFile(authFile, JSON.stringify({ auths: { [reg.host]: { identitytoken: 'rt-carol-1' } } }));
  const r = await pullImage(await freshStore(), `${reg.host}/test/multi:1.0`, {
    ...FAST,
    credentials: { env },
  });
  assert.is(r.names[0], `${reg.host}/test/multi:1.0`);
  assert.ok(ts.requests.length > 0);
  for (const q of ts.requests) {
    assert.is(q.grant, 'refresh_token', `every token request is the OAuth2 grant (${JSON.stringify(q)})`);
    assert.is(q.user, 'carol');
  }
  assert.ok(ts.requests.some((q) => q.scope === 'repository:test/multi:pull'));
  // A refresh token the server does not know: refused, naming where it came from.
  await fs.writeFile(authFile, JSON.stringify({ auths: { [reg.host]: { identitytoken: 'rt-stale' } } }));
  try {
    await pullImage(await freshStore(), `${reg.host}/test/multi:2.0`, { ...FAST, credentials: { env } });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, FailedPreconditionError);
    assert.match((err as Error).message, /refused/);
    assert.match((err as Error).message, authFile);
  }
});

test('HTTP_PROXY: requests go through the proxy; NO_PROXY skips it', async () => {
  // A forward proxy as clients speak to one: CONNECT tunnels (undici's ProxyAgent tunnels plain
  // http too), and absolute-form request lines for the clients that send those.
  const seen: string[] = [];
  const proxy = createServer((req, res) => {
    const target = new URL(req.url ?? '/');
    seen.push(`${req.method} ${target.host}`);
    const up = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname + target.search,
        method: req.method,
        headers: req.headers,
      },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => res.socket?.destroy());
    req.pipe(up);
  });
  const tunnels = new Set<Socket>();
  proxy.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    seen.push(`CONNECT ${req.url}`);
    const [host, port] = (req.url ?? '').split(':');
    const up = connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    for (const s of [up, client]) {
      tunnels.add(s);
      s.on('close', () => tunnels.delete(s));
      s.on('error', () => {
        up.destroy();
        client.destroy();
      });
    }
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  cleanups.push(async () => {
    proxy.closeAllConnections();
    for (const t of tunnels) t.destroy();
    await new Promise((r) => proxy.close(r));
  });
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const env = { HTTP_PROXY: proxyUrl };
  const r = await pullImage(await freshStore(), `${anon.host}/test/multi:2.0`, {
    ...FAST,
    http: { ...FAST.http, env },
  });
  assert.ok(r.objectsWritten > 0);
  assert.ok(
    seen.length > 0 && seen.every((s) => s === `CONNECT ${anon.host}` || s === `GET ${anon.host}`),
    `every connection to the registry went through the proxy (${seen.join(', ')})`,
  );
  seen.length = 0;
  await pullImage(await freshStore(), `${anon.host}/test/multi:2.0`, {
    ...FAST,
    http: { ...FAST.http, env: { ...env, NO_PROXY: '127.0.0.1' } },
  });
  assert.equal(seen, [], 'NO_PROXY: nothing through the proxy');
});

test('a bundle that asks (org.strata.pull): the daemon pulls the image before serving its root', async () => {
  const store = await freshStore();
  const conf = join(work, 'registries.conf');
  await fs.writeFile(conf, `[[registry]]\nlocation = "${anon.host}"\ninsecure = true\n`);
  const saved = process.env.CONTAINERS_REGISTRIES_CONF;
  process.env.CONTAINERS_REGISTRIES_CONF = conf;
  const manager = new ContainerManager({
    storeRoot: store.root,
    logger: openLog(join(work, 'd.log'), false),
  });
  try {
    const bundle = join(work, 'bundle');
    await fs.mkdir(join(bundle, 'rootfs'), { recursive: true });
    const ref = `${anon.host}/test/multi:2.0`;
    const config = (pull: string) =>
      ({
        ociVersion: '1.0.2',
        root: { path: 'rootfs', readonly: true },
        annotations: { [IMAGE_ANNOTATION]: ref, [PULL_ANNOTATION]: pull },
      }) as RuntimeConfig;
    const never = await manager.prepareAhead('c0', bundle, config('never')).catch((e: Error) => e);
    assert.instance(never, Error, 'never: the missing image is not pulled');
    assert.match((never as Error).message, ref);
    const bad = await manager.prepareAhead('c1', bundle, config('sometimes')).catch((e: Error) => e);
    assert.instance(bad, InvalidArgumentError);
    assert.match((bad as Error).message, PULL_ANNOTATION);
    await manager.prepareAhead('c2', bundle, config('missing'));
    assert.equal(
      (await listRefs(store.root)).map((r) => r.name),
      [ref],
      'pulled under its name before the root was served',
    );
    assert.equal(
      manager.list().map((c) => c.id),
      ['c2'],
    );
  } finally {
    await manager.releaseAll('test over');
    if (saved === undefined) delete process.env.CONTAINERS_REGISTRIES_CONF;
    else process.env.CONTAINERS_REGISTRIES_CONF = saved;
  }
  assert.is(manager.size, 0);
  assert.equal(await listLeases(store.root), []);
});

test.run();
