import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as W from '../../../../src/mount/fuse/wire/xattr.js';
import { hex } from '../helpers.js';

test('fuse_getxattr_in / fuse_getxattr_out', () => {
  const inp = hex(`00010000 00000000`);
  assert.equal(W.decodeGetxattrIn(inp), { size: 256 });
  assert.equal(W.encodeGetxattrIn({ size: 256 }), inp);
  const out = hex(`11000000 00000000`);
  assert.equal(W.decodeGetxattrOut(out), { size: 17 });
  assert.equal(W.encodeGetxattrOut({ size: 17 }), out);
});

test('fuse_setxattr_in (compat size) and the LISTXATTR name list', () => {
  const s = hex(`05000000 01000000`);
  assert.equal(W.decodeSetxattrIn(s), { size: 5, flags: 1 });
  assert.equal(W.encodeSetxattrIn({ size: 5, flags: 1 }), s);
  const names = W.encodeXattrNames(['user.a', 'security.capability']);
  assert.equal(names, Buffer.from('user.a\0security.capability\0'));
  assert.equal(W.decodeXattrNames(names), ['user.a', 'security.capability']);
  assert.equal(W.decodeXattrNames(Buffer.alloc(0)), []);
});

test.run();
