// The `strata run` wire protocol (src/run/protocol.ts): framing, every message kind, and
// the errors malformed input gets. Pure: no socket, no daemon.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import {
  MAX_RUN_MESSAGE,
  RUN_PROTOCOL_VERSION,
  decodeRunMessages,
  encodeExec,
  encodeExit,
  encodeExited,
  encodeResume,
  encodeRunMessage,
  encodeRunRequest,
  isRunRequest,
  parseExec,
  parseExit,
  parseExited,
  parseResume,
  parseRunRequest,
  type ExecInstruction,
  type RunMessage,
  type RuntimeEnd,
} from '../../src/run/protocol.js';
import { InvalidArgumentError } from '../../src/errors.js';

/** Decodes a buffer holding exactly one complete message. */
function one(buf: Buffer): RunMessage {
  const { messages, rest } = decodeRunMessages(buf);
  assert.is(messages.length, 1, 'one message');
  assert.is(rest.length, 0, 'nothing left over');
  return messages[0];
}

/** fn throws an InvalidArgumentError whose message matches `re`. */
function throwsInvalid(fn: () => unknown, re: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, InvalidArgumentError);
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable(`expected an InvalidArgumentError matching ${String(re)}`);
}

test('the frame: "<verb> <byte length>\\n" then NUL-terminated fields', () => {
  assert.is(encodeRunMessage('started', ['42']).toString('latin1'), 'started 3\n42\0');
  assert.is(encodeRunMessage('fallback', []).toString('latin1'), 'fallback 0\n');
  // The length counts UTF-8 bytes, not characters.
  assert.is(encodeRunMessage('exit', ['é']).toString('utf8'), 'exit 3\né\0');
});

test('run request round trip: cwd, argv (empty and odd arguments included), env', () => {
  const req = {
    cwd: '/home/user/dir with space',
    argv: ['--rm', '-e', 'A=b=c', 'busybox', 'echo "a b"; exit 3', '', 'ünïcødé'],
    env: ['PATH=/usr/bin:/bin', 'EMPTY=', 'MULTI=line1\nline2'],
  };
  const msg = one(encodeRunRequest(req));
  assert.is(msg.verb, 'run');
  assert.is(msg.fields[0], RUN_PROTOCOL_VERSION);
  assert.equal(parseRunRequest(msg), req);
  // No arguments and no environment at all.
  assert.equal(parseRunRequest(one(encodeRunRequest({ cwd: '/', argv: [], env: [] }))), {
    cwd: '/',
    argv: [],
    env: [],
  });
  assert.ok(isRunRequest(encodeRunRequest(req)));
  assert.not.ok(isRunRequest(Buffer.from('STRATA-HOOK 1 createRuntime\n')));
  assert.not.ok(isRunRequest(Buffer.from('{"op":"ping"}\n')));
});

test('started, exited (code, signal, early), exit and fallback round trip', () => {
  const started = one(encodeRunMessage('started', ['1234']));
  assert.equal(started, { verb: 'started', fields: ['1234'] });

  const ends: RuntimeEnd[] = [
    { kind: 'code', value: 0 },
    { kind: 'code', value: 255 },
    { kind: 'signal', value: 9 },
    { kind: 'early', value: 2 },
  ];
  for (const end of ends) assert.equal(parseExited(one(encodeExited(end))), end);

  assert.equal(parseExit(one(encodeExit(125, 'strata: no image named "x"\nsecond line'))), {
    code: 125,
    message: 'strata: no image named "x"\nsecond line',
  });
  assert.equal(parseExit(one(encodeExit(0))), { code: 0, message: '' });

  assert.equal(one(encodeRunMessage('fallback', [])), { verb: 'fallback', fields: [] });
  // Empty fields survive: one empty field is not the same as none.
  assert.equal(one(encodeRunMessage('exec', [''])).fields, ['']);
  assert.equal(one(encodeRunMessage('exec', ['', ''])).fields, ['', '']);
});

test('exec round trip, with and without a mount namespace', () => {
  const base: ExecInstruction = {
    argv: ['/usr/bin/crun', '--root', '/run/strata/crun', 'run', '--bundle', '/b', 'id'],
    cwd: '/run/strata/containers/id/bundle',
    stdin: 'inherit',
    pgrp: 'same',
    pidFile: '/run/strata/containers/id/pid',
  };
  assert.equal(parseExec(one(encodeExec(base))), {
    ...base,
    mntns: undefined,
    id: undefined,
    runDir: undefined,
  });
  const withNs: ExecInstruction = {
    ...base,
    stdin: 'null',
    pgrp: 'new',
    mntns: '/proc/77/ns/mnt',
    id: 'a'.repeat(64),
    runDir: '/run/strata',
  };
  assert.equal(parseExec(one(encodeExec(withNs))), withNs);
  // An argv holding "--" and "a=b" after the separator is argv, not options.
  const odd: ExecInstruction = { ...base, argv: ['/bin/sh', '--', 'x=y', '--'] };
  assert.equal(parseExec(one(encodeExec(odd))).argv, ['/bin/sh', '--', 'x=y', '--']);
  // Options the front end does not send take their defaults.
  assert.equal(parseExec({ verb: 'exec', fields: ['--', '/bin/true'] }), {
    argv: ['/bin/true'],
    cwd: '/',
    stdin: 'null',
    pgrp: 'new',
    mntns: undefined,
    pidFile: '',
    id: undefined,
    runDir: undefined,
  });
});

test('resume round trip, with and without the runtime end; malformed ones refused', () => {
  const id = 'b'.repeat(64);
  assert.equal(parseResume(one(encodeResume({ id, runDir: '/run/x', runtimePid: 42 }))), {
    id,
    runDir: '/run/x',
    runtimePid: 42,
    end: undefined,
  });
  assert.equal(parseResume(one(encodeResume({ id, runDir: '/run/x', end: { kind: 'signal', value: 9 } }))), {
    id,
    runDir: '/run/x',
    runtimePid: undefined,
    end: { kind: 'signal', value: 9 },
  });
  for (const fields of [
    ['1', 'x', '/run/x', ''],
    ['1', id, 'relative', ''],
    ['1', id, '/run/x', 'pid'],
    ['2', id, '/run/x', ''],
    ['1', id, '/run/x', '', 'code'],
  ])
    assert.throws(
      () => parseResume({ verb: 'resume', fields }),
      (e: unknown) => e instanceof InvalidArgumentError,
    );
});

test('split chunks: a message arriving byte by byte; two messages and a partial one in a buffer', () => {
  const whole = encodeRunRequest({ cwd: '/tmp', argv: ['busybox', 'é'], env: ['A=1'] });
  let buf: Buffer = Buffer.alloc(0);
  const got: RunMessage[] = [];
  for (let i = 0; i < whole.length; i++) {
    const { messages, rest } = decodeRunMessages(Buffer.concat([buf, whole.subarray(i, i + 1)]));
    got.push(...messages);
    buf = rest;
    if (i < whole.length - 1) assert.is(got.length, 0, `nothing complete after ${i + 1} bytes`);
  }
  assert.is(got.length, 1);
  assert.is(buf.length, 0);
  assert.equal(parseRunRequest(got[0]), { cwd: '/tmp', argv: ['busybox', 'é'], env: ['A=1'] });

  const third = encodeExited({ kind: 'code', value: 3 });
  const joined = Buffer.concat([
    encodeRunMessage('started', ['99']),
    encodeExited({ kind: 'signal', value: 15 }),
    third.subarray(0, 9),
  ]);
  const { messages, rest } = decodeRunMessages(joined);
  assert.equal(
    messages.map((m) => [m.verb, m.fields]),
    [
      ['started', ['99']],
      ['exited', ['signal', '15']],
    ],
  );
  assert.equal(rest, third.subarray(0, 9));
  const after = decodeRunMessages(Buffer.concat([rest, third.subarray(9)]));
  assert.equal(after.messages, [{ verb: 'exited', fields: ['code', '3'] }]);
  assert.is(after.rest.length, 0);

  // A header alone (its body not here yet) is kept, not consumed.
  const head = decodeRunMessages(Buffer.from('exit 5\n1'));
  assert.equal([head.messages, head.rest.toString()], [[], 'exit 5\n1']);
});

test('malformed frames are InvalidArgumentErrors naming the problem', () => {
  const bad = (s: string) => () => decodeRunMessages(Buffer.from(s, 'latin1'));
  throwsInvalid(bad('run\n'), /malformed run message: bad header line/);
  throwsInvalid(bad('run x\n'), /bad header line/);
  throwsInvalid(bad('run  3\n'), /bad header line/);
  throwsInvalid(bad('RUN 0\n'), /bad header line/);
  throwsInvalid(bad('{"op":"ping"}\n'), /bad header line/);
  throwsInvalid(bad('hello 0\n'), /bad header line/); // an unknown verb
  throwsInvalid(bad('x'.repeat(40)), /malformed run message: no header line/);
  throwsInvalid(
    bad(`run ${MAX_RUN_MESSAGE + 1}\n`),
    new RegExp(`too large \\(${MAX_RUN_MESSAGE + 1} bytes\\)`),
  );
  throwsInvalid(bad('run 99999999\n'), /run message too large/);
  throwsInvalid(bad('run 3\nabc'), /the last field is not NUL-terminated/);
  // A bad message after a good one still throws (the good one is not silently dropped later).
  throwsInvalid(() => decodeRunMessages(Buffer.concat([encodeExit(1), Buffer.from('zz 1\n')])), /bad header/);
  // Exactly the maximum is a size the decoder waits for rather than refuses.
  assert.equal(decodeRunMessages(Buffer.from(`run ${MAX_RUN_MESSAGE}\n`)).messages, []);
});

test('malformed messages: exec option without "=", bad run requests, bad exited and exit', () => {
  throwsInvalid(
    () => parseExec({ verb: 'exec', fields: ['cwd', '--', '/bin/true'] }),
    /malformed exec option "cwd"/,
  );
  throwsInvalid(() => parseExec({ verb: 'exec', fields: ['=x', '--', '/bin/true'] }), /exec option "=x"/);
  throwsInvalid(() => parseExec({ verb: 'exec', fields: ['cwd=/'] }), /malformed exec message/);
  throwsInvalid(() => parseExec({ verb: 'exec', fields: ['cwd=/', '--'] }), /malformed exec message/);
  throwsInvalid(() => parseExec({ verb: 'exit', fields: ['--', '/bin/true'] }), /malformed exec message/);

  const run = (fields: string[]): RunMessage => ({ verb: 'run', fields });
  throwsInvalid(
    () => parseRunRequest(run(['2', '/', '0'])),
    /this daemon speaks run protocol 1, the front end "2": restart the daemon/,
  );
  throwsInvalid(() => parseRunRequest(run([])), /run protocol 1/);
  throwsInvalid(() => parseRunRequest(run(['1', 'relative/dir', '0'])), /bad cwd or argument count/);
  throwsInvalid(() => parseRunRequest(run(['1', '', '0'])), /bad cwd/);
  throwsInvalid(() => parseRunRequest(run(['1', '/', '3', 'a', 'b'])), /bad cwd or argument count/);
  throwsInvalid(() => parseRunRequest(run(['1', '/', '-1'])), /argument count/);
  throwsInvalid(() => parseRunRequest(run(['1', '/', '1.5', 'a'])), /argument count/);
  throwsInvalid(() => parseRunRequest(run(['1', '/', 'two', 'a', 'b'])), /argument count/);
  throwsInvalid(
    () => parseRunRequest({ verb: 'started', fields: ['1', '/', '0'] }),
    /expected a run request/,
  );
  // argc may take every field: then there is no environment.
  assert.equal(parseRunRequest(run(['1', '/', '2', 'a', 'b'])), { cwd: '/', argv: ['a', 'b'], env: [] });

  const exited = (fields: string[]): RunMessage => ({ verb: 'exited', fields });
  throwsInvalid(() => parseExited(exited(['stopped', '1'])), /malformed exited message/);
  throwsInvalid(() => parseExited(exited(['code', '-1'])), /malformed exited/);
  throwsInvalid(() => parseExited(exited(['code', 'x'])), /malformed exited/);
  throwsInvalid(() => parseExited(exited(['code'])), /malformed exited/);
  throwsInvalid(() => parseExited({ verb: 'exit', fields: ['code', '1'] }), /malformed exited/);
  throwsInvalid(() => parseExit({ verb: 'exit', fields: ['x', 'm'] }), /malformed exit message/);
  throwsInvalid(() => parseExit({ verb: 'exec', fields: ['1'] }), /malformed exit message/);
});

test('a NUL inside a field is refused when encoding', () => {
  throwsInvalid(() => encodeRunMessage('exit', ['1', 'a\0b']), /a exit field contains a NUL byte/);
  throwsInvalid(
    () => encodeRunRequest({ cwd: '/', argv: ['x\0y'], env: [] }),
    /a run field contains a NUL byte/,
  );
  throwsInvalid(() => encodeExit(125, 'oops\0'), /NUL byte/);
});

test.run();
