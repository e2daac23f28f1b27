import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { COMMANDS, mountFastPath, runFastPath } from '../../src/cli/commands.js';
import { cliArgv } from '../../src/executables.js';

test('each row of the command table says what its module says (help lists them without loading)', async () => {
  for (const entry of COMMANDS) {
    const mod = await entry.load();
    assert.is(entry.command, mod.command, entry.command);
    assert.is(entry.describe, mod.describe, entry.command);
  }
});

test('strata --help into a pipe: every command and its description whole on one line', () => {
  const [cmd, ...args] = cliArgv(['--help']);
  // stdout is a pipe here, not a TTY: yargs' fixed-width wrap used to cut words (`conta\niner`).
  const help = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = help.split('\n');
  for (const entry of COMMANDS) {
    const name = entry.command.split(' ')[0];
    const line = lines.find(
      (l) => l.trimStart().startsWith(`strata ${name} `) || l.trim() === `strata ${name}`,
    );
    assert.ok(line, `no line for ${name} in:\n${help}`);
    assert.ok(
      line.trimEnd().endsWith(entry.describe),
      `${name}'s description is cut: ${JSON.stringify(line)}`,
    );
  }
});

test('run skips yargs only when it is the command, after nothing but --root', () => {
  assert.equal(runFastPath(['run', '--rm', 'busybox', 'true']), {
    rest: ['--rm', 'busybox', 'true'],
    root: undefined,
  });
  assert.equal(runFastPath(['--root', '/s', 'run', 'img']), { rest: ['img'], root: '/s' });
  assert.equal(runFastPath(['--root=/s', 'run']), { rest: [], root: '/s' });
  assert.is(runFastPath(['image', 'run']), undefined);
  assert.is(runFastPath(['--help', 'run']), undefined);
  assert.is(runFastPath(['--root']), undefined);
  assert.is(runFastPath([]), undefined);
});

test('mount skips yargs for its own options; anything else goes to yargs for its message', () => {
  const plain = { root: undefined, image: 'debian', dir: '/mnt', passthrough: true, method: 'auto' };
  assert.equal(mountFastPath(['mount', 'debian', '/mnt']), plain);
  assert.equal(
    mountFastPath(['--root', '/s', 'mount', '--no-passthrough', 'debian', '/mnt', '--method', 'fusermount3']),
    { ...plain, root: '/s', passthrough: false, method: 'fusermount3' },
  );
  assert.equal(mountFastPath(['mount', 'debian', '/mnt', '--method=mount-api', '--root=/s']), {
    ...plain,
    root: '/s',
    method: 'mount-api',
  });
  assert.equal(mountFastPath(['mount', '--passthrough', 'debian', '/mnt']), plain);
  assert.is(mountFastPath(['mount', 'debian']), undefined);
  assert.is(mountFastPath(['mount', 'debian', '/mnt', 'extra']), undefined);
  assert.is(mountFastPath(['mount', 'debian', '/mnt', '--method', 'fuse']), undefined);
  assert.is(mountFastPath(['mount', 'debian', '/mnt', '--method']), undefined);
  assert.is(mountFastPath(['mount', '--help']), undefined);
  assert.is(mountFastPath(['mount', 'debian', '/mnt', '--verbose']), undefined);
  assert.is(mountFastPath(['umount', '/mnt']), undefined);
  assert.is(mountFastPath(['image', 'mount', 'a']), undefined);
});

test.run();
