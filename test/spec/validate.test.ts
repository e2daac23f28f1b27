import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { InvalidArgumentError } from '../../src/store/errors.js';
import { parseAndValidate, validate } from '../../src/spec/validate.js';
import type { Lease } from '../../src/spec/generated/lease.js';

test('a valid document comes back typed', () => {
  const lease = validate<Lease>('lease', {
    id: 'c1',
    image: 'sha256:' + 'a'.repeat(64),
    createdAt: new Date().toISOString(),
  });
  assert.is(lease.id, 'c1');
});

test('an invalid document names the field and the document', () => {
  try {
    validate('lease', { id: '../x', image: 'nope', createdAt: 'x' }, 'lease c1');
    assert.unreachable();
  } catch (err) {
    assert.instance(err, InvalidArgumentError);
    assert.match((err as Error).message, /^lease c1 is invalid: /);
    assert.match((err as Error).message, /\/image/);
  }
});

test('malformed JSON is an InvalidArgumentError', () => {
  assert.throws(() => parseAndValidate('lease', '{', 'lease c2'), /lease c2 is not valid JSON/);
});

test('generated types are up to date with schemas/', () => {
  execFileSync(process.execPath, ['scripts/gen-types.mjs', '--check'], { stdio: 'pipe' });
});

test.run();
