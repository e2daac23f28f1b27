import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  decodeHookReply,
  decodeHookRequest,
  encodeHookReply,
  encodeHookRequest,
  HOOK_EXIT,
  hookExitCode,
  isHookRequest,
} from '../../src/daemon/hook-protocol.js';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../../src/errors.js';

test('request round trip keeps the state bytes exactly', () => {
  const state = '{"ociVersion":"1.0.2","id":"c1","status":"creating","bundle":"/b"}';
  const wire = encodeHookRequest({ stage: 'createContainer', stateJson: state });
  assert.ok(isHookRequest(wire));
  assert.equal(decodeHookRequest(wire), { stage: 'createContainer', stateJson: state });
});

test('unknown stages and bad headers are refused', () => {
  assert.throws(
    () => decodeHookRequest(Buffer.from('STRATA-HOOK 1 prestart\n{}')),
    (e: unknown) => e instanceof InvalidArgumentError,
  );
  assert.throws(() => decodeHookRequest(Buffer.from('STRATA-HOOK 2 poststop\n{}')), /bad header/);
  assert.not.ok(isHookRequest(Buffer.from('{"op":"list"}')));
});

test('replies: ok with fields, and errors', () => {
  const ok = encodeHookReply({ ok: true, rootfs: '/run/b/rootfs', readonly: true });
  assert.is(ok.toString(), 'ok\nrootfs /run/b/rootfs\nreadonly 1\n');
  assert.equal(decodeHookReply(ok), { ok: true, rootfs: '/run/b/rootfs', readonly: true });
  assert.is(encodeHookReply({ ok: true }).toString(), 'ok\n');
  const err = encodeHookReply({ ok: false, message: 'image busybox not found\nrootfs /etc' });
  assert.is(err.toString(), 'error image busybox not found rootfs /etc\n', 'a newline cannot forge a field');
  assert.equal(decodeHookReply(err), { ok: false, message: 'image busybox not found rootfs /etc' });
});

test('a rootfs path that could forge fields is refused', () => {
  assert.throws(
    () => encodeHookReply({ ok: true, rootfs: '/a\nreadonly 1' }),
    (e: unknown) => e instanceof InvalidArgumentError,
  );
  assert.throws(
    () => encodeHookReply({ ok: true, rootfs: 'relative' }),
    (e: unknown) => e instanceof InvalidArgumentError,
  );
});

test("an error reply can name the hook's exit code; one outside 1-125 is refused", () => {
  const err = encodeHookReply({ ok: false, message: 'image x is not in the store', exitCode: 5 });
  assert.is(err.toString(), 'error image x is not in the store\nexit 5\n');
  assert.equal(decodeHookReply(err), { ok: false, message: 'image x is not in the store', exitCode: 5 });
  for (const exitCode of [0, 126, 1.5, -1]) {
    assert.throws(
      () => encodeHookReply({ ok: false, message: 'm', exitCode }),
      (e: unknown) => e instanceof InvalidArgumentError,
    );
  }
});

test('the exit code for a refusal: an image missing from the store is told apart', () => {
  const image = new NotFoundError('image x is not in the store', { op: 'prepare', ref: 'x' });
  assert.is(hookExitCode(image), HOOK_EXIT.imageMissing);
  assert.is(
    hookExitCode(new NotFoundError('no root prepared for container c', { op: 'attach' })),
    HOOK_EXIT.failed,
  );
  assert.is(hookExitCode(new AlreadyExistsError('container c already has a root')), HOOK_EXIT.failed);
  assert.is(hookExitCode(new Error('internal')), HOOK_EXIT.failed);
});

test.run();
