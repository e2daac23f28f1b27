import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildCapabilities } from '../../src/spec/capabilities.js';
import { ALL_CAPABILITIES, DEFAULT_CAPABILITIES } from '../../src/spec/defaults.js';

test('root gets podman 4.3 default set in bounding, effective and permitted', () => {
  const c = buildCapabilities([], [], 0);
  assert.equal(c.bounding, [
    'CAP_CHOWN',
    'CAP_DAC_OVERRIDE',
    'CAP_FOWNER',
    'CAP_FSETID',
    'CAP_KILL',
    'CAP_NET_BIND_SERVICE',
    'CAP_SETFCAP',
    'CAP_SETGID',
    'CAP_SETPCAP',
    'CAP_SETUID',
    'CAP_SYS_CHROOT',
  ]);
  assert.equal(c.effective, c.bounding);
  assert.equal(c.permitted, c.bounding);
  assert.is(c.ambient, undefined);
});

test('names without CAP_ and in any case; add and drop', () => {
  const c = buildCapabilities(['net_admin', 'CAP_SYS_PTRACE'], ['chown', 'CAP_KILL'], 0);
  assert.ok(c.bounding?.includes('CAP_NET_ADMIN') && c.bounding.includes('CAP_SYS_PTRACE'));
  assert.not.ok(c.bounding?.includes('CAP_CHOWN') || c.bounding?.includes('CAP_KILL'));
});

test('ALL: add ALL gives every capability, drop ALL then add keeps only the added', () => {
  assert.is(buildCapabilities(['ALL'], [], 0).bounding?.length, ALL_CAPABILITIES.length);
  assert.equal(buildCapabilities(['ALL'], ['sys_admin'], 0).bounding?.includes('CAP_SYS_ADMIN'), false);
  assert.equal(buildCapabilities(['NET_RAW'], ['ALL'], 0).bounding, ['CAP_NET_RAW']);
  assert.equal(buildCapabilities([], ['all'], 0).bounding, []);
});

test('a non-root user keeps the bounding set but only the added capabilities take effect', () => {
  const c = buildCapabilities(['SYS_ADMIN'], [], 1000);
  assert.equal(c.bounding, [...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN'].sort());
  for (const set of [c.effective, c.permitted, c.inheritable, c.ambient])
    assert.equal(set, ['CAP_SYS_ADMIN']);
  assert.equal(buildCapabilities([], [], 1000).effective, []);
});

test('unknown capabilities are refused with the flag named', () => {
  assert.throws(() => buildCapabilities([], ['CAP_WINGS'], 0), /--cap-drop CAP_WINGS: unknown capability/);
});

test.run();
