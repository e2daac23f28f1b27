// `strata daemon --exit-idle`: a daemon a user starts for a burst of work leaves by itself once
// it has served nothing for that long, removing its socket; a bad value is a usage error.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'strata-cli-daemon-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function daemonArgs(...extra: string[]): string[] {
  return [
    '--import',
    'tsx',
    MAIN,
    '--root',
    join(dir, 'store'),
    'daemon',
    '--socket',
    join(dir, 'd.sock'),
    '--log-file',
    join(dir, 'd.log'),
    ...extra,
  ];
}

test('--exit-idle: the daemon exits 0 after the idle time and removes its socket', async () => {
  const started = Date.now();
  const child = spawn(process.execPath, daemonArgs('--exit-idle', '0.5'), { stdio: 'ignore' });
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const took = Date.now() - started;
  assert.is(code, 0);
  assert.ok(took < 15_000, `left after ${took} ms`);
  assert.not.ok(existsSync(join(dir, 'd.sock')), 'socket removed');
  assert.match(readFileSync(join(dir, 'd.log'), 'utf8'), /stopping \(idle/);
});

test('--exit-idle with a bad value is a usage error naming the value', () => {
  const r = spawnSync(process.execPath, daemonArgs('--exit-idle', 'soon'), { encoding: 'utf8' });
  assert.is(r.status, 2);
  assert.match(r.stderr, /--exit-idle wants a positive number of seconds, not "soon"/);
});

test.run();
