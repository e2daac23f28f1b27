import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hostRlimits, parseProcLimits } from '../../src/spec/defaults.js';

const TEXT = [
  'Limit                     Soft Limit           Hard Limit           Units     ',
  'Max cpu time              unlimited            unlimited            seconds   ',
  'Max processes             unlimited            unlimited            processes ',
  'Max open files            1024                 524288               files     ',
].join('\n');

test('parseProcLimits reads soft and hard, leaving unlimited out', () => {
  const l = parseProcLimits(TEXT);
  assert.equal(l.get('RLIMIT_NOFILE'), { soft: 1024, hard: 524288 });
  assert.is(l.has('RLIMIT_NPROC'), false);
});

test('hostRlimits raises the soft limit to the hard one and never above', () => {
  assert.equal(hostRlimits(TEXT), [{ type: 'RLIMIT_NOFILE', soft: 524288, hard: 524288 }]);
});

test('hostRlimits without text reads this process', () => {
  const nofile = hostRlimits().find((r) => r.type === 'RLIMIT_NOFILE');
  assert.ok(nofile && nofile.hard > 0 && nofile.soft === nofile.hard);
});

test.run();
