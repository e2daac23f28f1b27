import { statSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bdiName, setReadahead } from '../../../src/mount/fuse/readahead.js';

test('bdiName decodes dev_t as glibc does (8+12 bit minor, 12+20 bit major)', () => {
  assert.is(bdiName(0x34), '0:52');
  assert.is(bdiName((259 << 8) | 1), '259:1');
  assert.is(bdiName(44 + (256 << 12)), '0:300'); // minor 300: the high minor bits sit above bit 20
  assert.is(bdiName((8 << 8) | 16), '8:16');
});

test('bdiName names a real device: / is backed by a bdi in /sys/class/bdi', () => {
  const { dev } = statSync('/');
  assert.match(bdiName(dev), /^\d+:\d+$/);
});

test('setReadahead says false where there is no window to set (no such path)', async () => {
  assert.is(await setReadahead('/nonexistent/strata', 1024), false);
});

test.run();
