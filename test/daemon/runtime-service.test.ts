// The daemon's side of strata-runtime (src/daemon/runtime-service.ts) against a real daemon with
// the busybox image, driven by the real executable with a stand-in runtime (`STRATA_OCI_RUNTIME`
// = /bin/true: it "creates" nothing and exits at once) or over a raw socket. Bundles are laid out
// as containers/storage lays out podman's (<root>/overlay-containers/<id>/userdata, with
// containers.json beside the container directories naming the image ID).
import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { hookExecutable, runtimeExecutable } from '../../src/executables.js';
import { decodeRunMessages, encodeRunMessage, type RunMessage } from '../../src/run/protocol.js';
import { ContainerManager } from '../../src/daemon/containers.js';
import { openLog } from '../../src/daemon/log.js';
import {
  containersStorageImage,
  criImageRecord,
  decideRuntime,
  isRuntimeRequest,
  parseRuntimeRequest,
  servedConfig,
} from '../../src/daemon/runtime-service.js';
import type { RuntimeConfig } from '../../src/schema/generated/runtime-config.js';
import { resolveImageRecord } from '../../src/store/records.js';
import {
  assertNoLeaks,
  bundle,
  closeDaemonEnv,
  eventually,
  openDaemonEnv,
  runCollect,
  type DaemonEnv,
} from '../integration/harness.js';

let d: DaemonEnv;
let template: RuntimeConfig;
let configDigest: string;
let n = 0;

test.before(async () => {
  d = await openDaemonEnv(['busybox']);
  const b = await bundle(d.env, 'busybox', { command: ['true'] });
  template = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8')) as RuntimeConfig;
  delete template.annotations;
  delete template.hooks;
  configDigest = (await resolveImageRecord(d.env.storeRoot, 'busybox')).configDigest;
});

test.after(() => closeDaemonEnv(d));

/** A podman-like bundle for container `id` whose containers.json names `image`. */
function podmanBundle(image: string | undefined, containersJson?: string): { id: string; bundle: string } {
  const id = `${String(++n).padStart(2, '0')}${'a'.repeat(62)}`;
  const root = join(d.env.dir, `cs-${n}`, 'overlay-containers');
  const bundleDir = join(root, id, 'userdata');
  mkdirSync(join(bundleDir, 'rootfs'), { recursive: true });
  writeFileSync(join(bundleDir, 'config.json'), JSON.stringify({ ...template, root: { path: 'rootfs' } }));
  writeFileSync(
    join(root, 'containers.json'),
    containersJson ??
      JSON.stringify([
        { id: 'other', image: 'x' },
        { id, image, layer: 'l', names: ['n'] },
      ]),
  );
  return { id, bundle: bundleDir };
}

/** strata-runtime VERB --bundle B ID with /bin/true as the runtime; notes go to a log file. */
async function strataRuntime(id: string, bundleDir: string, socket = d.env.socket) {
  const conf = join(d.env.dir, 'runtime.conf');
  const notes = join(d.env.dir, `notes-${n}.log`);
  writeFileSync(conf, `log = ${notes}\n`);
  const r = await runCollect(
    runtimeExecutable(),
    ['create', '--bundle', bundleDir, '--pid-file', '/dev/null', id],
    {
      env: {
        ...process.env,
        STRATA_SOCKET: socket,
        STRATA_RUNTIME_CONF: conf,
        STRATA_OCI_RUNTIME: '/bin/true',
      },
    },
  );
  let note = '';
  try {
    note = readFileSync(notes, 'utf8');
  } catch {
    // no note
  }
  return { ...r, note };
}

test('an image the store holds: config.json gets the root and the hook, nothing else; the root is released when the runtime ends unattached', async () => {
  const { id, bundle: b } = podmanBundle(configDigest.slice('sha256:'.length));
  const before = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8')) as RuntimeConfig;
  const r = await strataRuntime(id, b);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout + r.stderr, '', 'nothing on the container stdio');
  assert.match(r.note, `container ${id}: serving image sha256:`);
  const after = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8')) as RuntimeConfig;
  assert.is(after.root?.path, join(b, 'strata-rootfs'));
  assert.is(after.hooks?.createContainer?.[0].path, hookExecutable());
  assert.equal({ ...after, root: before.root, hooks: undefined }, { ...before, hooks: undefined });
  // /bin/true never attached it: the daemon sees the runtime's pid go and releases the root
  // once it is prepared.
  const released = `container ${id}: released (its runtime (pid`;
  const logged = await eventually(() => readFileSync(d.env.logFile, 'utf8').includes(released), 15_000);
  assert.ok(logged, readFileSync(d.env.logFile, 'utf8'));
  await assertNoLeaks(d.env, d.mountsBefore);
});

test('an image the store lacks, no record, an unreadable record: pass-through, config.json untouched', async () => {
  for (const [image, json, why] of [
    ['b'.repeat(64), undefined, 'is not in the strata store'],
    [undefined, undefined, 'no image known for it'],
    ['c'.repeat(64), '{"not": "an array"}', "containers/storage's record is unreadable"],
  ] as const) {
    const { id, bundle: b } = podmanBundle(image, json);
    const before = readFileSync(join(b, 'config.json'), 'utf8');
    const r = await strataRuntime(id, b);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.note, why);
    assert.match(r.note, 'running bundle');
    assert.is(readFileSync(join(b, 'config.json'), 'utf8'), before);
  }
  await assertNoLeaks(d.env, d.mountsBefore);
});

test("the daemon's list of held images: a podman container of an image the store lacks passes through without asking; a store change or a doubtful list asks again", async () => {
  const list = d.env.socket + '.images';
  const lacking = 'e'.repeat(64);
  const asked = (id: string): boolean => readFileSync(d.env.logFile, 'utf8').includes(`container ${id}: `);
  const create = async (image: string): Promise<{ id: string; note: string }> => {
    const { id, bundle: b } = podmanBundle(image);
    const r = await strataRuntime(id, b);
    assert.is(r.code, 0, r.stderr);
    return { id, note: r.note };
  };
  // One answer from the daemon (here, or an earlier test's) publishes the list.
  await create(lacking);
  assert.ok(await eventually(() => existsSync(list), 5000), 'the daemon published its list');
  const published = readFileSync(list, 'utf8');
  assert.match(published, /^strata-runtime-images 1\n\/[^\n]*\/images\n\d+ \d+\n\d+\n([0-9a-f]{64}\n)+$/);
  assert.ok(published.includes(`\n${configDigest.slice('sha256:'.length)}\n`), 'the held image is listed');
  const second = await create(lacking);
  assert.not.ok(asked(second.id), 'not asked');
  assert.match(
    second.note,
    `container ${second.id}: image sha256:${lacking} is not in the strata store (the strata daemon's list ${list}); running bundle`,
  );
  // A held image still asks (and is served; /bin/true never attaches it: released).
  const held = await create(configDigest.slice('sha256:'.length));
  assert.match(held.note, `container ${held.id}: serving image`);
  // The store's images changed since the list: ask (the daemon publishes again once settled).
  utimesSync(join(d.env.storeRoot, 'images'), new Date(), new Date());
  const third = await create(lacking);
  assert.ok(asked(third.id), 'asked after a store change');
  assert.ok(
    await eventually(async () => {
      await create(lacking);
      return readFileSync(list, 'utf8') !== published;
    }, 5000),
    'published again',
  );
  assert.not.ok(asked((await create(lacking)).id), 'not asked with the new list');
  // A list others may write proves nothing.
  chmodSync(list, 0o666);
  assert.ok(asked((await create(lacking)).id), 'asked: the list is world-writable');
  chmodSync(list, 0o644);
  writeFileSync(list, readFileSync(list, 'utf8') + 'not-a-digest\n');
  assert.ok(asked((await create(lacking)).id), 'asked: a malformed list');
  assert.ok(
    await eventually(async () => !asked((await create(lacking)).id), 5000),
    'the daemon wrote it again',
  );
  const released = `container ${held.id}: released (its runtime`;
  assert.ok(await eventually(() => readFileSync(d.env.logFile, 'utf8').includes(released), 5000));
  await assertNoLeaks(d.env, d.mountsBefore);
});

test('an annotated bundle without a daemon fails naming the socket; an unannotated one passes', async () => {
  const { id, bundle: b } = podmanBundle(undefined);
  const dead = join(d.env.dir, 'dead.sock');
  const pass = await strataRuntime(id, b, dead);
  assert.is(pass.code, 0);
  assert.match(pass.note, `no strata daemon on ${dead}`);
  const c = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8')) as RuntimeConfig;
  writeFileSync(
    join(b, 'config.json'),
    JSON.stringify({ ...c, annotations: { 'org.strata.image': 'busybox' } }),
  );
  const fail = await strataRuntime(id, b, dead);
  assert.is(fail.code, 1);
  assert.match(fail.stderr, `no strata daemon answers on ${dead}`);
});

/** One raw runtime message to the daemon; its answer. */
function ask(fields: string[]): Promise<RunMessage> {
  return new Promise((resolve, reject) => {
    const s = connect(d.env.socket);
    let buf = Buffer.alloc(0);
    s.on('data', (x) => (buf = Buffer.concat([buf, x])));
    s.on('error', reject);
    s.on('end', () => {
      const { messages } = decodeRunMessages(buf);
      if (messages[0]) resolve(messages[0]);
      else reject(new Error('no answer'));
    });
    s.write(encodeRunMessage('runtime', fields));
  });
}

test('the protocol: a wrong version or verb, a relative bundle, a bad id', async () => {
  let m = await ask(['9', 'create', 'x', '/tmp']);
  assert.is(m.verb, 'exit');
  assert.equal(m.fields[0], '1');
  assert.match(m.fields[1], 'runtime protocol 1');
  m = await ask(['1', 'start', 'x', '/tmp']);
  assert.match(m.fields[1], 'unknown runtime verb "start"');
  m = await ask(['1', 'create', 'x', 'rel/dir']);
  assert.match(m.fields[1], 'not absolute');
  m = await ask(['1', 'create', 'bad/id', '/tmp']);
  assert.is(m.verb, 'pass');
  assert.match(m.fields[0], 'is not a container id');
});

/** A stand-in runtime process: alive until killed. */
function runtimeProcess(): ChildProcess {
  return spawn('sleep', ['60'], { stdio: 'ignore' });
}

async function killed(p: ChildProcess): Promise<void> {
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
}

// podman's --restart: the container exits, podman deletes it and creates it again with the same
// id and bundle, at once. The first create's runtime ends after it attached its root; its end
// (seen up to a poll interval later) must not release the next root of that id, and the next
// create may come before the daemon has seen the first root's session end (ENODEV).
for (const [when, seen] of [
  ['before', false],
  ['after', true],
] as const)
  test(`a restart ${when} the daemon saw the first root's end: the first runtime ending never releases the next root of the same id`, async () => {
    const logFile = join(d.env.dir, 'restart-manager.log');
    const logger = openLog(logFile, false);
    const manager = new ContainerManager({ storeRoot: d.env.storeRoot, logger });
    const opts = { storeRoot: d.env.storeRoot, socketPath: d.env.socket, manager, logger };
    const { id, bundle: b } = podmanBundle(configDigest.slice('sha256:'.length));
    const state = JSON.stringify({ ociVersion: '1.0.2', id, status: 'creating', bundle: b });
    const first = runtimeProcess();
    const second = runtimeProcess();
    try {
      const one = await decideRuntime({ verb: 'create', id, bundle: b }, first.pid!, opts);
      assert.is(one.kind, 'serve', JSON.stringify(one));
      // createContainer takes the mount; closing it is the container's namespace going away.
      closeSync((await manager.createContainer(state)).mountFd);
      await killed(first);
      if (seen) assert.ok(await eventually(() => manager.size === 0, 5000), 'the first root released');
      // The second create: its root is prepared once the first root's release is done.
      const two = await decideRuntime({ verb: 'create', id, bundle: b }, second.pid!, opts);
      assert.is(two.kind, 'serve', JSON.stringify(two));
      assert.ok(
        await eventually(() => manager.list()[0]?.state === 'prepared', 5000),
        'the second root prepared',
      );
      // Three poll intervals of the runtime watch: the first runtime's end is long seen.
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(
        manager.list().map((c) => [c.id, c.state]),
        [[id, 'prepared']],
        readFileSync(logFile, 'utf8'),
      );
      assert.not.match(readFileSync(logFile, 'utf8'), `its runtime (pid ${first.pid})`);
      // Its own runtime's end releases it.
      await killed(second);
      assert.ok(await eventually(() => manager.size === 0, 5000), readFileSync(logFile, 'utf8'));
      assert.match(
        readFileSync(logFile, 'utf8'),
        `container ${id}: released (its runtime (pid ${second.pid}) ended without attaching it`,
      );
    } finally {
      first.kill('SIGKILL');
      second.kill('SIGKILL');
      await manager.releaseAll('test end');
    }
    await assertNoLeaks(d.env, d.mountsBefore);
  });

test("CRI's image-name annotation: a reference or pinned digest the store holds, never a path", async () => {
  const root = d.env.storeRoot;
  const busybox = await resolveImageRecord(root, 'busybox');
  const found = async (name: string): Promise<string> => {
    const r = await criImageRecord(root, name);
    return typeof r === 'string' ? r : r.manifestDigest;
  };
  assert.is(await found('busybox'), busybox.manifestDigest);
  assert.is(await found(`docker.io/library/anything@${busybox.manifestDigest}`), busybox.manifestDigest);
  assert.match(await found('localhost/nothing/here:1'), 'is not in the strata store');
  for (const bad of ['/etc/passwd', '../../images', 'a/../../b', `x@sha256:${'z'.repeat(64)}`])
    assert.match(await found(bad), 'is not an image reference', bad);
  assert.match(await found(''), 'is empty or too long');
  assert.match(await found('a'.repeat(2000)), 'is empty or too long');
});

test('pure parts: request parsing, the containers/storage lookup, the served config', () => {
  assert.ok(isRuntimeRequest(encodeRunMessage('runtime', ['1'])));
  assert.not.ok(isRuntimeRequest(encodeRunMessage('run', ['1'])));
  assert.equal(parseRuntimeRequest({ verb: 'runtime', fields: ['1', 'run', 'i', '/b'] }), {
    verb: 'run',
    id: 'i',
    bundle: '/b',
  });
  assert.equal(parseRuntimeRequest({ verb: 'runtime', fields: ['1', 'create', 'i', '/b', 'first-use'] }), {
    verb: 'create',
    id: 'i',
    bundle: '/b',
    importOnFirstUse: true,
  });
  assert.match(
    String(parseRuntimeRequest({ verb: 'runtime', fields: ['1', 'create', 'i', '/b', 'always'] })),
    'unknown runtime option "always"',
  );
  const { id, bundle: b } = podmanBundle('d'.repeat(64));
  assert.is(containersStorageImage(b, id), `sha256:${'d'.repeat(64)}`);
  assert.is(containersStorageImage(b, 'another-id'), undefined, "the bundle is not that container's");
  const elsewhere = join(d.env.dir, 'plain-bundle');
  mkdirSync(elsewhere);
  copyFileSync(join(b, 'config.json'), join(elsewhere, 'config.json'));
  assert.is(containersStorageImage(elsewhere, id), undefined, 'not a containers/storage layout');
  const theirs = { path: '/usr/libexec/oci/hooks/x', args: ['x'] };
  const c = servedConfig(
    { ...template, hooks: { createContainer: [theirs] } },
    '/b/strata-rootfs',
    '/h',
    '/s',
  );
  assert.equal(
    c.hooks?.createContainer?.map((h) => h.path),
    ['/h', theirs.path],
  );
  const again = servedConfig(c, '/b/strata-rootfs', '/h', '/s');
  assert.equal(
    again.hooks?.createContainer?.map((h) => h.path),
    ['/h', theirs.path],
    'once',
  );
});

test.run();
