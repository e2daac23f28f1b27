import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { COMMANDS, runFastPath } from '../../src/cli/commands.js';

test('each row of the command table says what its module says (help lists them without loading)', async () => {
  for (const entry of COMMANDS) {
    const mod = await entry.load();
    assert.is(entry.command, mod.command, entry.command);
    assert.is(entry.describe, mod.describe, entry.command);
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

test.run();
