// `strata run --pull missing|always|never` end to end: the real CLI and daemon, an image that is
// only in a loopback registry (registries.conf marks it insecure: plain http).
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cliArgv } from '../../src/executables.js';
import { parseRunArgs, withPullDone } from '../../src/run/args.js';
import { busyboxImage } from '../fixtures/images.js';
import { push, startRegistry, type TestRegistry } from '../fixtures/registry.js';
import {
  assertRunsLeftNothing,
  closeDaemonEnv,
  openDaemonEnv,
  runCollect,
  type DaemonEnv,
  type RunResult,
} from '../integration/harness.js';

let d: DaemonEnv;
let reg: TestRegistry;
let runDir: string;
let conf: string;

function strata(args: string[]): Promise<RunResult> {
  const [cmd, ...rest] = cliArgv(args);
  return runCollect(cmd, rest, {
    env: {
      ...process.env,
      STRATA_ROOT: d.env.storeRoot,
      STRATA_SOCKET: d.env.socket,
      STRATA_RUN_DIR: runDir,
      CONTAINERS_REGISTRIES_CONF: conf,
      REGISTRY_AUTH_FILE: join(d.env.dir, 'auth.json'),
      STRATA_MIN_FREE: '0',
    },
  });
}

test.before(async () => {
  d = await openDaemonEnv(['busybox']);
  runDir = join(d.env.dir, 'rundir');
  reg = await startRegistry();
  const bb = await busyboxImage();
  await push(`oci:${bb.ociLayout}:latest`, `${reg.host}/test/pulled:latest`);
  conf = join(d.env.dir, 'registries.conf');
  await fs.writeFile(conf, `[[registry]]\nlocation = "${reg.host}"\ninsecure = true\n`);
});

test.after(async () => {
  await reg?.stop();
  await closeDaemonEnv(d);
});

test('what the Node front end forwards after pulling: --pull=never, the rest untouched', () => {
  const cases = [
    ['--pull', 'always', '--rm', 'img', '--pull', 'x'],
    ['-e', '--pull', '--pull=always', 'img'],
    ['-it', '-eA=1', '-u', '0', '--pull=missing', 'img', 'sh'],
    ['--rm', '--', 'img', '--pull'],
  ];
  for (const argv of cases) {
    const before = parseRunArgs(argv);
    const after = parseRunArgs(withPullDone(argv));
    assert.equal({ ...after, pull: undefined }, { ...before, pull: undefined }, argv.join(' '));
    assert.is(after.pull, 'never');
  }
});

test('--pull never: a missing image is an error; default (missing) pulls it; always pulls again', async () => {
  const image = `${reg.host}/test/pulled`;
  const never = await strata(['run', '--rm', '--pull', 'never', image, 'true']);
  assert.is(never.code, 125);
  assert.match(never.stderr, `no image named "${image}"`);
  const r = await strata(['run', '--rm', image, 'echo pulled']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'pulled\n');
  const ls = await strata(['image', 'ls', '--json']);
  assert.match(ls.stdout, `${image}:latest`);
  const again = await strata(['run', '--rm', '--pull=always', image, 'echo again']);
  assert.is(again.code, 0, again.stderr);
  assert.is(again.stdout, 'again\n');
  const bad = await strata(['run', '--rm', '--pull', 'sometimes', image, 'true']);
  assert.is(bad.code, 125);
  assert.match(bad.stderr, 'use missing, always or never');
  const gone = await strata(['run', '--rm', `${reg.host}/test/absent`, 'true']);
  assert.is(gone.code, 125);
  assert.match(gone.stderr, /no image named .* pulling it failed: .*not found/);
  await assertRunsLeftNothing(d, runDir);
});

test.run();
