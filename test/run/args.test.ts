import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { parseRunArgs } from '../../src/run/args.js';

test('options before IMAGE, the command after it untouched (its own -flags too)', () => {
  const a = parseRunArgs([
    '--rm',
    '-it',
    '-eA=1',
    '-e',
    'B',
    '--name=x',
    '-v',
    '/h:/c:ro',
    'busybox',
    'ls',
    '-l',
    '--rm',
  ]);
  assert.is(a.image, 'busybox');
  assert.equal(a.command, ['ls', '-l', '--rm']);
  assert.ok(a.rm && a.interactive && a.tty);
  assert.equal(a.env, ['A=1', 'B']);
  assert.is(a.name, 'x');
  assert.equal(a.volumes, ['/h:/c:ro']);
});

test('-- before or right after IMAGE is a separator', () => {
  assert.equal(parseRunArgs(['--', 'img', 'true']).command, ['true']);
  assert.equal(parseRunArgs(['img', '--', 'sh', '-c', 'x']).command, ['sh', '-c', 'x']);
});

test('bad input names the option', () => {
  assert.throws(() => parseRunArgs(['--network', 'bridge', 'img']), /--network "bridge": use none or host/);
  assert.throws(() => parseRunArgs(['--runtime', 'youki', 'img']), /strata runs crun or runc/);
  assert.throws(() => parseRunArgs(['--bogus', 'img']), /unknown option --bogus/);
  assert.throws(() => parseRunArgs(['-e']), /-e needs a value/);
  assert.throws(() => parseRunArgs(['--rm']), /no image given/);
  assert.throws(() => parseRunArgs(['-dt', 'img']), /-d with -t is not supported/);
});

test('the container options come out in RunOptions form, ready for the bundle writer', () => {
  const cleared = parseRunArgs(['--entrypoint', '', '--mount', 'type=tmpfs,dst=/t', 'img']);
  assert.equal(cleared.entrypoint, []);
  assert.is(cleared.command, undefined, "no command: the image's Cmd");
  assert.equal(cleared.mountSpecs, ['type=tmpfs,dst=/t']);
  const given = parseRunArgs(['--entrypoint=/bin/sh', '--read-only', '--network', 'host', 'img', '-c', 'x']);
  assert.equal(given.entrypoint, ['/bin/sh']);
  assert.equal(given.command, ['-c', 'x']);
  assert.ok(given.readOnly);
  assert.is(given.network, 'host');
});

test('--help needs no image', () => {
  assert.ok(parseRunArgs(['--help']).help);
});

test.run();
