// The CLI entry points: `strata bundle` (options and `-- CMD`), `strata hooks install`,
// `strata daemon --help/--list`, end to end with runc.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { cliArgv } from '../../hooks/paths.js';
import type { RuntimeConfig } from '../../src/spec/generated/runtime-config.js';
import { eventually, makeEnv, removeEnv, runContainer, served, startDaemon } from './harness.js';

function strata(args: string[]) {
  const [cmd, ...rest] = cliArgv(args);
  return spawnSync(cmd, rest, { encoding: 'utf8' });
}

test('strata bundle + runc run; strata daemon --list; strata hooks install', async () => {
  const env = await makeEnv(['busybox']);
  const daemon = await startDaemon(env);
  try {
    const dir = join(env.dir, 'b');
    const b = strata([
      '--root',
      env.storeRoot,
      'bundle',
      'busybox',
      dir,
      '--read-only',
      '-e',
      'GREETING=hi',
      '-u',
      '0',
      '--hostname',
      'clibox',
      '--socket',
      env.socket,
      '--entrypoint',
      '/bin/sh',
      '--',
      '-c',
      'echo $GREETING $(hostname) $(id -u); exit 4',
    ]);
    assert.is(b.status, 0, b.stderr);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as RuntimeConfig;
    assert.equal(config.process?.args, ['/bin/sh', '-c', 'echo $GREETING $(hostname) $(id -u); exit 4']);
    const r = await runContainer('runc', dir, 'cli-1');
    assert.is(r.code, 4, r.stderr);
    assert.is(r.stdout, 'hi clibox 0\n');
    assert.ok(await eventually(async () => (await served(env)).length === 0));
    const list = strata(['daemon', '--socket', env.socket, '--list']);
    assert.is(list.status, 0, list.stderr);
    assert.is(list.stdout.trim(), 'CONTAINER  IMAGE  STATE  SINCE  BUNDLE');

    const hooksDir = join(env.dir, 'hooks.d');
    const h = strata([
      '--root',
      env.storeRoot,
      'hooks',
      'install',
      '--dir',
      hooksDir,
      '--socket',
      env.socket,
    ]);
    assert.is(h.status, 0, h.stderr);
    assert.equal(readdirSync(hooksDir).sort(), [
      'strata-create-container.json',
      'strata-create-runtime.json',
      'strata-poststop.json',
    ]);

    const help = strata(['daemon', '--help']).stdout.replace(/\n */g, ''); // yargs wraps at 80 columns
    assert.match(help, 'Logs go to /var/log/strata/daemon.log');
    assert.match(help, '/run/strata/strata.sock');
  } finally {
    assert.is(await daemon.stop(), 0);
    removeEnv(env);
  }
});

test('strata daemon --list without a daemon says where it looked', () => {
  const r = strata(['daemon', '--socket', '/nonexistent/strata.sock', '--list']);
  assert.is(r.status, 6);
  assert.match(r.stderr, 'cannot reach the strata daemon at /nonexistent/strata.sock');
});

test.run();
