import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as W from '../../../../src/mount/fuse/wire/interrupt.js';
import { hex } from '../helpers.js';

test('fuse_interrupt_in', () => {
  const b = hex(`2a00000000000080`);
  assert.equal(W.decodeInterruptIn(b), { unique: 0x800000000000002an });
  assert.equal(W.encodeInterruptIn(W.decodeInterruptIn(b)), b);
});

test.run();
