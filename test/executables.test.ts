// The daemon argv the hooks carry idle-exits; the one `strata run` starts does not.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { daemonArgv, ON_DEMAND_EXIT_IDLE_S, serviceDaemonArgv } from '../src/executables.js';

const loc = { storeRoot: '/s', socketPath: '/r/strata.sock', logFile: '/l/daemon.log' };

test('daemonArgv: the daemon entry with --exit-idle, store, socket and log', () => {
  const argv = daemonArgv(loc);
  assert.is(argv[0], process.execPath);
  assert.match(argv.join(' '), /src\/daemon\/main\.(ts|js) --root \/s --socket \/r\/strata\.sock/);
  assert.match(argv.join(' '), `--exit-idle ${ON_DEMAND_EXIT_IDLE_S} --log-file /l/daemon.log`);
  assert.match(daemonArgv(loc, 0.5).join(' '), '--exit-idle 0.5');
});

test('serviceDaemonArgv: `strata daemon`, never idle-exiting', () => {
  const argv = serviceDaemonArgv(loc).join(' ');
  assert.match(argv, /src\/cli\/main\.(ts|js) daemon --root \/s --socket \/r\/strata\.sock --log-file/);
  assert.not.match(argv, '--exit-idle');
});

test.run();
