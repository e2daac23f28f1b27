// The CLI entry points: `strata bundle` (options and `-- CMD`), `strata hooks install`,
// `strata daemon --help/--list`, end to end with runc.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import type { RuntimeConfig } from '../../src/schema/generated/runtime-config.js';
import {
  installHooksCli,
  runContainer,
  servesNothing,
  strataSync as strata,
  withDaemonEnv,
} from './harness.js';

test('strata bundle + runc run; strata daemon --list; strata hooks install', async () => {
  await withDaemonEnv(['busybox'], async ({ env }) => {
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
    assert.ok(await servesNothing(env));
    const list = strata(['daemon', '--socket', env.socket, '--list']);
    assert.is(list.status, 0, list.stderr);
    assert.is(list.stdout.trim(), 'CONTAINER  IMAGE  STATE  SINCE  BUNDLE');

    const hooksDir = join(env.dir, 'hooks.d');
    const h = installHooksCli(env, hooksDir);
    assert.is(h.status, 0, h.stderr);
    assert.equal(readdirSync(hooksDir).sort(), [
      'strata-create-container.json',
      'strata-create-runtime.json',
      'strata-poststop.json',
    ]);

    const help = strata(['daemon', '--help']).stdout.replace(/\n */g, ''); // yargs wraps at 80 columns
    assert.match(help, 'Logs go to /var/log/strata/daemon.log');
    assert.match(help, '/run/strata/strata.sock');
  });
});

test('strata daemon --list without a daemon says where it looked', () => {
  const r = strata(['daemon', '--socket', '/nonexistent/strata.sock', '--list']);
  assert.is(r.status, 6);
  assert.match(r.stderr, 'cannot reach the strata daemon at /nonexistent/strata.sock');
});

test.run();
