import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { InvalidArgumentError } from '../../src/errors.js';
import { buildRuntimeConfig, normalizeSignal, type ImageConfigInput } from '../../src/spec/runtime-config.js';
import { parseMount, parseVolume, type RunOptions } from '../../src/spec/options.js';
import { DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS } from '../../src/spec/defaults.js';
import type { RuntimeConfig } from '../../src/schema/generated/runtime-config.js';
import { officialErrors } from './official-schema.js';

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n';
const GROUP = 'root:x:0:\nbob:x:1000:\nwheel:x:10:bob\n';
const files = new Map([
  ['/etc/passwd', Buffer.from(PASSWD)],
  ['/etc/group', Buffer.from(GROUP)],
]);
const lookup = (p: string): Buffer | undefined => files.get(p);
// The layout of /proc/self/limits: columns padded with runs of spaces.
const LIMITS = [
  'Limit                     Soft Limit           Hard Limit           Units     ',
  'Max processes             96365                96365                processes ',
  'Max open files            1024                 20000                files     ',
  'Max locked memory         8388608              8388608              bytes     ',
].join('\n');

const built: RuntimeConfig[] = [];
function build(image: ImageConfigInput['config'], opts: RunOptions = {}): RuntimeConfig {
  const c = buildRuntimeConfig({ config: image }, { procLimits: LIMITS, hostEnv: {}, ...opts }, lookup);
  built.push(c);
  return c;
}
const envOf = (c: RuntimeConfig): string[] => c.process?.env ?? [];
const mountAt = (c: RuntimeConfig, d: string) => c.mounts?.find((m) => m.destination === d);

function throwsInvalid(fn: () => unknown, re: RegExp): void {
  try {
    fn();
    assert.unreachable('expected an error');
  } catch (err) {
    assert.instance(err, InvalidArgumentError);
    assert.match((err as Error).message, re);
  }
}

test('args: Entrypoint + Cmd; a command replaces Cmd; --entrypoint replaces both; [] clears', () => {
  const img = { Entrypoint: ['/bin/ep', '-x'], Cmd: ['default'] };
  assert.equal(build(img).process?.args, ['/bin/ep', '-x', 'default']);
  assert.equal(build(img, { command: ['ls', '-l'] }).process?.args, ['/bin/ep', '-x', 'ls', '-l']);
  assert.equal(build(img, { entrypoint: ['/bin/sh'] }).process?.args, ['/bin/sh']);
  assert.equal(build(img, { entrypoint: ['/bin/sh'], command: ['-c', 'id'] }).process?.args, [
    '/bin/sh',
    '-c',
    'id',
  ]);
  assert.equal(build(img, { entrypoint: [], command: ['/bin/true'] }).process?.args, ['/bin/true']);
  assert.equal(build({ Cmd: ['/bin/sh'], Entrypoint: null }).process?.args, ['/bin/sh']);
});

test('args: nothing to run is an InvalidArgumentError', () => {
  throwsInvalid(() => build({}), /nothing to run/);
  throwsInvalid(() => build({ Entrypoint: ['/x'] }, { entrypoint: [] }), /nothing to run/);
});

test('env: image env, then the user (by key), PATH default, container=strata, HOSTNAME, HOME', () => {
  const c = build(
    { Cmd: ['x'], Env: ['A=1', 'B=2'] },
    { env: ['B=3', 'C=4', 'FROMHOST', 'MISSING'], hostEnv: { FROMHOST: 'h' }, hostname: 'box' },
  );
  assert.equal(envOf(c), [
    'A=1',
    'B=3',
    'C=4',
    'FROMHOST=h',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'container=strata',
    'HOSTNAME=box',
    'HOME=/root',
  ]);
  assert.equal(
    envOf(build({ Cmd: ['x'], Env: ['PATH=/only'] })).filter((e) => e.startsWith('PATH=')),
    ['PATH=/only'],
  );
  throwsInvalid(() => build({ Cmd: ['x'] }, { env: ['=v'] }), /empty variable name/);
});

test('env: TERM=xterm only with a tty, which also sets process.terminal', () => {
  const tty = build({ Cmd: ['x'] }, { tty: true });
  assert.ok(envOf(tty).includes('TERM=xterm'));
  assert.is(tty.process?.terminal, true);
  const plain = build({ Cmd: ['x'] });
  assert.not.ok(envOf(plain).some((e) => e.startsWith('TERM=')));
  assert.is(plain.process?.terminal, false);
});

test('cwd: WorkingDir, overridden by --workdir, default /', () => {
  assert.is(build({ Cmd: ['x'] }).process?.cwd, '/');
  assert.is(build({ Cmd: ['x'], WorkingDir: '/srv/app' }).process?.cwd, '/srv/app');
  assert.is(build({ Cmd: ['x'], WorkingDir: '/srv/app' }, { workdir: '/tmp' }).process?.cwd, '/tmp');
  throwsInvalid(() => build({ Cmd: ['x'] }, { workdir: 'rel' }), /--workdir "rel" must be an absolute path/);
});

test('user: from the image, overridden by --user, resolved in the image files', () => {
  const c = build({ Cmd: ['x'], User: 'bob' });
  assert.equal(c.process?.user, { uid: 1000, gid: 1000, umask: 18, additionalGids: [10] });
  assert.ok(envOf(c).includes('HOME=/home/bob'));
  assert.equal(build({ Cmd: ['x'], User: 'bob' }, { user: '4242:7' }).process?.user, {
    uid: 4242,
    gid: 7,
    umask: 18,
  });
  throwsInvalid(
    () => build({ Cmd: ['x'], User: 'alice' }),
    /user "alice" not found: it is not in the image's \/etc\/passwd/,
  );
});

test('no image label becomes an annotation; StopSignal does, normalized; the user annotations win', () => {
  const hostile = {
    'run.oci.hooks.stdout': '/tmp/owned',
    'io.kubernetes.cri.container-type': 'sandbox',
    'io.containerd.runc.v2.group': 'x',
    'org.strata.image': 'sha256:' + '0'.repeat(64),
    a: '1',
  };
  const c = build({ Cmd: ['x'], Labels: hostile, StopSignal: 'sigquit' }, { annotations: { b: 'user' } });
  assert.equal(c.annotations, { b: 'user', 'org.opencontainers.image.stopSignal': 'SIGQUIT' });
  assert.is(normalizeSignal('15'), '15');
  assert.is(normalizeSignal('RTMIN+3'), 'SIGRTMIN+3');
  throwsInvalid(() => build({ Cmd: ['x'], StopSignal: 'SIGNOPE' }), /stop signal "SIGNOPE" is not a signal/);
});

test('the stop-signal label is validated like StopSignal; StopSignal wins over it', () => {
  const label = (v: string) => ({ 'org.opencontainers.image.stopSignal': v });
  assert.equal(build({ Cmd: ['x'], Labels: label('usr1') }).annotations, {
    'org.opencontainers.image.stopSignal': 'SIGUSR1',
  });
  assert.equal(build({ Cmd: ['x'], Labels: label('usr1'), StopSignal: 'SIGINT' }).annotations, {
    'org.opencontainers.image.stopSignal': 'SIGINT',
  });
  throwsInvalid(
    () => build({ Cmd: ['x'], Labels: label('SIGTERM; run.oci.hooks.stdout=/x') }),
    /stop signal "SIGTERM; run.oci.hooks.stdout=\/x" is not a signal/,
  );
  throwsInvalid(() => build({ Cmd: ['x'], Labels: label('99') }), /is not a signal/);
});

test('Volumes become anonymous tmpfs mounts; a user mount at the same place replaces one', () => {
  const c = build({ Cmd: ['x'], Volumes: { '/data': {}, '/cache/': {} } });
  assert.equal(mountAt(c, '/data'), {
    destination: '/data',
    type: 'tmpfs',
    source: 'tmpfs',
    options: ['rw', 'rprivate', 'nosuid', 'nodev'],
  });
  assert.ok(mountAt(c, '/cache'));
  const d = build({ Cmd: ['x'], Volumes: { '/data': {} } }, { mounts: [parseVolume('/host:/data:ro')] });
  assert.equal(
    d.mounts?.filter((m) => m.destination === '/data'),
    [{ destination: '/data', type: 'bind', source: '/host', options: ['ro', 'rprivate', 'rbind'] }],
  );
});

test('defaults: podman namespaces, capabilities, masked and readonly paths, kernel mounts', () => {
  const c = build({ Cmd: ['x'] });
  assert.equal(
    c.linux?.namespaces?.map((n) => n.type),
    ['pid', 'network', 'ipc', 'uts', 'mount'],
  );
  assert.equal(c.process?.capabilities?.bounding, [...DEFAULT_CAPABILITIES]);
  assert.equal(c.process?.capabilities?.effective, [...DEFAULT_CAPABILITIES]);
  assert.equal(c.linux?.maskedPaths, [...MASKED_PATHS]);
  assert.equal(c.linux?.readonlyPaths, [...READONLY_PATHS]);
  assert.equal(
    c.mounts?.map((m) => `${m.destination}:${m.type}`),
    ['/proc:proc', '/dev:tmpfs', '/sys:sysfs', '/dev/pts:devpts', '/dev/mqueue:mqueue', '/dev/shm:tmpfs'],
  );
  assert.ok(mountAt(c, '/sys')?.options?.includes('ro'));
  assert.is(c.process?.noNewPrivileges, false);
  assert.equal(c.root, { path: 'rootfs', readonly: false });
  assert.is(c.ociVersion, '1.0.2-dev');
});

test('no cgroup mount, no linux.resources, no cgroup or user namespace (they break crun here)', () => {
  const c = build({ Cmd: ['x'] }, { readOnly: true, network: 'host' });
  assert.not.ok(c.mounts?.some((m) => m.type === 'cgroup' || m.destination.startsWith('/sys/fs/cgroup')));
  assert.is(c.linux?.resources, undefined);
  assert.not.ok(c.linux?.namespaces?.some((n) => n.type === 'cgroup' || n.type === 'user'));
});

test('rlimits: NOFILE and NPROC at the current hard limit, never above it', () => {
  assert.equal(build({ Cmd: ['x'] }).process?.rlimits, [
    { type: 'RLIMIT_NOFILE', soft: 20000, hard: 20000 },
    { type: 'RLIMIT_NPROC', soft: 96365, hard: 96365 },
  ]);
});

test('--read-only: root.readonly, podman tmpfs scratch dirs, read-only /etc files', () => {
  const c = build({ Cmd: ['x'] }, { readOnly: true, etcFiles: { hosts: '/run/x/hosts' } });
  assert.is(c.root?.readonly, true);
  for (const d of ['/tmp', '/run', '/var/tmp']) assert.is(mountAt(c, d)?.type, 'tmpfs', d);
  assert.equal(mountAt(c, '/etc/hosts')?.options, ['bind', 'rprivate', 'ro']);
});

test('/etc/hosts, /etc/hostname, /etc/resolv.conf are binds of the host files given', () => {
  const c = build(
    { Cmd: ['x'] },
    { etcFiles: { hosts: '/r/hosts', hostname: '/r/hostname', resolvConf: '/r/resolv.conf' } },
  );
  assert.equal(mountAt(c, '/etc/resolv.conf'), {
    destination: '/etc/resolv.conf',
    type: 'bind',
    source: '/r/resolv.conf',
    options: ['bind', 'rprivate'],
  });
  assert.is(mountAt(c, '/etc/hosts')?.source, '/r/hosts');
  assert.is(mountAt(c, '/etc/hostname')?.source, '/r/hostname');
  assert.is(mountAt(build({ Cmd: ['x'] }), '/etc/hosts'), undefined);
  throwsInvalid(() => build({ Cmd: ['x'] }, { etcFiles: { hosts: 'rel' } }), /must be an absolute path/);
});

test('hostname: --hostname, else the container id, else the host name with --network host', () => {
  assert.is(build({ Cmd: ['x'] }, { hostname: 'web1' }).hostname, 'web1');
  assert.is(build({ Cmd: ['x'] }, { containerId: '0123456789abcdef' }).hostname, '0123456789ab');
  assert.is(build({ Cmd: ['x'] }, { network: 'host' }).hostname, hostname());
  throwsInvalid(() => build({ Cmd: ['x'] }, { hostname: 'a b' }), /not a valid host name/);
});

test('--network host shares the host network namespace; none keeps a private one', () => {
  assert.not.ok(
    build({ Cmd: ['x'] }, { network: 'host' }).linux?.namespaces?.some((n) => n.type === 'network'),
  );
  assert.ok(build({ Cmd: ['x'] }, { network: 'none' }).linux?.namespaces?.some((n) => n.type === 'network'));
});

test('--cap-add / --cap-drop reach the config', () => {
  const caps = build({ Cmd: ['x'] }, { capAdd: ['sys_admin'], capDrop: ['CAP_CHOWN'] }).process?.capabilities;
  assert.ok(caps?.bounding?.includes('CAP_SYS_ADMIN'));
  assert.not.ok(caps?.bounding?.includes('CAP_CHOWN'));
  throwsInvalid(() => build({ Cmd: ['x'] }, { capAdd: ['FLY'] }), /--cap-add FLY: unknown capability/);
});

test('user mounts come after the defaults; duplicates and relative destinations are refused', () => {
  const c = build(
    { Cmd: ['x'] },
    { mounts: [parseMount('type=bind,src=/a,dst=/mnt/a,ro'), parseVolume('/b:/dev/shm')] },
  );
  assert.equal(
    c.mounts?.slice(-2).map((m) => m.destination),
    ['/mnt/a', '/dev/shm'],
  );
  assert.is(mountAt(c, '/dev/shm')?.type, 'bind');
  throwsInvalid(
    () => build({ Cmd: ['x'] }, { mounts: [parseVolume('/a:/m'), parseVolume('/b:/m/')] }),
    /two mounts have the destination \/m/,
  );
  throwsInvalid(
    () =>
      build({ Cmd: ['x'] }, { mounts: [{ type: 'bind', source: '/a', destination: 'rel', options: [] }] }),
    /must be an absolute path/,
  );
});

test('hooks are passed through', () => {
  const hooks = {
    createRuntime: [{ path: '/usr/lib/strata/hook', args: ['hook', 'createRuntime'], timeout: 10 }],
  };
  assert.equal(build({ Cmd: ['x'] }, { hooks }).hooks, hooks);
});

test('a config built with rlimits read from this host has NOFILE at most the hard limit', () => {
  const c = buildRuntimeConfig({ config: { Cmd: ['x'] } }, {}, lookup);
  const nofile = c.process?.rlimits?.find((r) => r.type === 'RLIMIT_NOFILE');
  const hard = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
  assert.ok(nofile && hard);
  assert.is(nofile.hard, Number(hard));
  built.push(c);
});

test('conformance: every config built above validates against the official runtime-spec schema', () => {
  assert.ok(built.length > 20);
  for (const c of built) assert.equal(officialErrors(c), [], JSON.stringify(c.process?.args));
});

test.run();
