// The strata-runtime executable (native/runtime/strata-runtime.c) on its own: runtime selection
// and its config file, the cgroup2 namespace workaround that lets crun run on this hybrid host
// (for every verb: run, state, list, delete), notes in the caller's log format, --version.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { runtimeExecutable } from '../../src/executables.js';
import { findExecutable, hostCgroupMounts, isHybridCgroups } from '../../src/run/runtime.js';
import { busyboxImage } from '../fixtures/images.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-rt-native-'));
const dead = join(dir, 'no-daemon.sock');
test.after(() => rmSync(dir, { recursive: true, force: true }));

function rt(args: string[], env: Record<string, string> = {}, cwd = dir) {
  return spawnSync(runtimeExecutable(), args, {
    cwd,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, STRATA_SOCKET: dead, ...env },
  });
}

test("--version names strata-runtime and the runtime it wraps, then prints that runtime's own", () => {
  const r = rt(['--version']);
  assert.is(r.status, 0, r.stderr);
  const m = /^strata-runtime version \S+ \(wrapping (\/\S+)\)\n/.exec(r.stdout);
  assert.ok(m, r.stdout);
  const own = spawnSync(m[1], ['--version'], { encoding: 'utf8' }).stdout;
  assert.is(r.stdout.slice(m[0].length), own);
  const crun = rt(['--version'], { STRATA_OCI_RUNTIME: 'crun' });
  assert.match(crun.stdout, `(wrapping ${findExecutable('crun')})\ncrun version`);
});

test("the config file: runtime, log; a bad key or a missing named file fails with runc's code", () => {
  const conf = join(dir, 'runtime.conf');
  const log = join(dir, 'notes.log');
  writeFileSync(conf, `# comment\n\nruntime = /bin/true\nlog = ${log}\n`);
  const r = rt(['create', '--bundle', dir, 'rt-native-1'], { STRATA_RUNTIME_CONF: conf });
  assert.is(r.status, 0, r.stderr);
  assert.match(
    readFileSync(log, 'utf8'),
    /^time="[^"]+" level=info msg="container rt-native-1: no strata daemon on /,
  );
  writeFileSync(conf, 'colour = blue\n');
  const bad = rt(['list'], { STRATA_RUNTIME_CONF: conf });
  assert.is(bad.status, 1);
  assert.match(bad.stderr, `${conf}:1: unknown key "colour"`);
  const missing = rt(['list'], { STRATA_RUNTIME_CONF: join(dir, 'nope.conf') });
  assert.is(missing.status, 1);
  assert.match(missing.stderr, 'nope.conf');
  const none = rt(['list'], { STRATA_OCI_RUNTIME: 'no-such-runtime' });
  assert.is(none.status, 1);
  assert.match(none.stderr, 'the OCI runtime "no-such-runtime"');
  // import = first-use|never; a bad value fails create (the only verb that uses it).
  writeFileSync(conf, 'runtime = /bin/true\nimport = sometimes\n');
  const badImport = rt(['create', '--bundle', dir, 'rt-native-2'], { STRATA_RUNTIME_CONF: conf });
  assert.is(badImport.status, 1);
  assert.match(badImport.stderr, `the config's \`import\` is "sometimes": expected "first-use" or "never"`);
  writeFileSync(conf, `runtime = /bin/true\nimport = never\nlog = ${log}\n`);
  const overridden = rt(['create', '--bundle', dir, 'rt-native-3'], {
    STRATA_RUNTIME_CONF: conf,
    STRATA_RUNTIME_IMPORT: 'first-use',
  });
  assert.is(overridden.status, 0, overridden.stderr);
  const badEnv = rt(['create', '--bundle', dir, 'rt-native-4'], { STRATA_RUNTIME_IMPORT: 'yes' });
  assert.is(badEnv.status, 1);
  assert.match(badEnv.stderr, '$STRATA_RUNTIME_IMPORT is "yes"');
});

test("notes go to --log in its --log-format (json), never to the container's stdio", () => {
  const log = join(dir, 'runtime-log.json');
  const r = rt(['--log', log, '--log-format', 'json', 'create', '--bundle', dir, 'rt-native-2'], {
    STRATA_OCI_RUNTIME: '/bin/true',
  });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout + r.stderr, '');
  const line = JSON.parse(readFileSync(log, 'utf8').trim()) as Record<string, string>;
  assert.is(line.level, 'info');
  assert.match(line.msg, 'container rt-native-2: no strata daemon on');
  assert.match(line.time, /^\d{4}-\d\d-\d\dT/);
});

test('crun through strata-runtime: run, state, list, delete work on this host', async () => {
  const hybrid = isHybridCgroups(hostCgroupMounts());
  const img = await busyboxImage();
  const bundle = join(dir, 'crun-bundle');
  mkdirSync(bundle);
  const spec = spawnSync('crun', ['spec'], { cwd: bundle, encoding: 'utf8' });
  assert.is(spec.status, 0, spec.stderr);
  const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  config.root = { path: img.rootfs, readonly: true }; // the reference tree, read-only
  config.process.terminal = false;
  config.process.args = ['/bin/sh', '-c', 'echo from-crun; exit 6'];
  // No device cgroup (crun's eBPF filter needs CAP_SYS_RESOURCE), no cgroup mount (hybrid host).
  delete config.linux.resources;
  config.mounts = config.mounts.filter((m: { type: string }) => m.type !== 'cgroup');
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
  const root = join(dir, 'crun-state');
  const env = { STRATA_OCI_RUNTIME: 'crun' };
  const run = rt(['--root', root, 'run', 'rt-native-crun'], env, bundle);
  assert.is(run.status, 6, run.stderr);
  assert.is(run.stdout, 'from-crun\n');
  if (hybrid) {
    const plain = spawnSync('crun', ['--root', root, 'run', 'rt-native-crun2'], {
      cwd: bundle,
      encoding: 'utf8',
    });
    assert.match(plain.stderr, 'hybrid', 'crun alone refuses this host');
    spawnSync('crun', ['--root', root, 'delete', '-f', 'rt-native-crun2']);
  }
  config.process.args = ['/bin/sleep', '60'];
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
  // The container keeps create's stdio: not pipes this test would wait on.
  const create = spawnSync(
    runtimeExecutable(),
    ['--root', root, 'create', '--bundle', bundle, 'rt-native-crun3'],
    {
      stdio: 'ignore',
      env: { PATH: process.env.PATH, STRATA_SOCKET: dead, ...env },
    },
  );
  assert.is(create.status, 0);
  const state = JSON.parse(rt(['--root', root, 'state', 'rt-native-crun3'], env).stdout) as {
    status: string;
  };
  assert.is(state.status, 'created');
  assert.match(rt(['--root', root, 'list'], env).stdout, 'rt-native-crun3');
  const del = rt(['--root', root, 'delete', '--force', 'rt-native-crun3'], env);
  assert.is(del.status, 0, del.stderr);
  assert.not.match(rt(['--root', root, 'list'], env).stdout, 'rt-native-crun3');
  rt(['--root', root, 'delete', '--force', 'rt-native-crun'], env);
});

test.run();
