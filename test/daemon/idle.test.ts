// The idle exit of an on-demand daemon: never while busy, once idle for the whole period.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { parseExitIdle, watchIdle } from '../../src/daemon/idle.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('fires once after idleMs without busy, not while busy', async () => {
  let busy = true;
  let fired = 0;
  const started = Date.now();
  let firedAt = 0;
  const w = watchIdle({
    idleMs: 100,
    intervalMs: 10,
    busy: () => busy,
    onIdle: () => {
      fired++;
      firedAt = Date.now();
    },
  });
  await sleep(250);
  assert.is(fired, 0, 'busy the whole time');
  busy = false;
  const freed = Date.now();
  await sleep(300);
  assert.is(fired, 1);
  assert.ok(firedAt - freed >= 90, `fired ${firedAt - freed} ms after the last busy sample`);
  assert.ok(firedAt - started >= 340);
  w.stop();
});

test('a busy moment restarts the idle period; stop() cancels', async () => {
  let busy = false;
  let fired = 0;
  const w = watchIdle({ idleMs: 150, intervalMs: 10, busy: () => busy, onIdle: () => fired++ });
  await sleep(100);
  busy = true;
  await sleep(30);
  busy = false;
  await sleep(100);
  assert.is(fired, 0, 'the busy moment restarted the clock');
  w.stop();
  await sleep(150);
  assert.is(fired, 0, 'stopped');
});

test('parseExitIdle: seconds to ms, fractions allowed, clear errors', () => {
  assert.is(parseExitIdle('2'), 2000);
  assert.is(parseExitIdle('0.3'), 300);
  for (const bad of ['', '0', '-1', 'two', 'Infinity']) {
    assert.throws(() => parseExitIdle(bad), /--exit-idle wants a positive number of seconds/);
  }
});

test.run();
