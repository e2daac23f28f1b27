import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { InvalidArgumentError } from '../../src/errors.js';
import { parseAndValidate, validate } from '../../src/schema/validate.js';
import type { Lease } from '../../src/schema/generated/lease.js';
import { validatorModules } from '../../src/schema/generated/validators.js';

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

test('formats and string lengths are checked (the runtime helpers load)', () => {
  assert.throws(
    () => validate('lease', { id: 'c1', image: 'sha256:' + 'a'.repeat(64), createdAt: 'yesterday' }),
    /\/createdAt must match format "date-time"/,
  );
  assert.throws(
    () => validate('docker-archive-manifest', [{ Config: '', Layers: [] }], 'manifest.json'),
    /^manifest.json is invalid: \/0\/Config must NOT have fewer than 1 characters$/,
  );
});

test('an unknown schema name is a programming error, not a validation failure', () => {
  assert.throws(() => validate('no-such-schema', {}), /no schema named no-such-schema/);
  assert.throws(() => validate('toString', {}), /no schema named toString/);
});

test('malformed JSON is an InvalidArgumentError', () => {
  assert.throws(() => parseAndValidate('lease', '{', 'lease c2'), /lease c2 is not valid JSON/);
});

test('the precompiled validators give the messages ajv compiling the schemas would', () => {
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
  addFormatsModule.default(ajv);
  const names = readdirSync('schemas')
    .filter((f) => f.endsWith('.schema.json'))
    .map((f) => f.replace(/\.schema\.json$/, ''));
  for (const name of names)
    ajv.addSchema(JSON.parse(readFileSync(`schemas/${name}.schema.json`, 'utf8')), name);
  const docs: unknown[] = [
    {},
    null,
    [],
    'x',
    { id: 7, image: 'sha256:x', createdAt: 'x', extra: true },
    { ociVersion: '1.0.2', root: { path: 5 }, process: { args: 'sh', cwd: 'rel' } },
    { schemaVersion: 2, mediaType: 'x', config: { digest: 'bad', size: -1 }, layers: [{}] },
    { op: 'ping' },
    { op: 'prepare', id: '' },
    { ok: true },
    { ok: false, error: { code: 1 } },
  ];
  for (const name of [...names, ...Object.keys(validatorModules).filter((n) => n.includes('#'))]) {
    const fn = ajv.getSchema(name);
    assert.ok(fn, name);
    for (const doc of docs) {
      const expected = fn(doc) ? undefined : `${name} is invalid: `;
      let got: string | undefined;
      try {
        validate(name, doc);
      } catch (err) {
        got = (err as Error).message;
      }
      if (expected === undefined) assert.is(got, undefined, `${name}: ${JSON.stringify(doc)}`);
      else {
        const want = (fn.errors ?? [])
          .slice(0, 5)
          .map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`)
          .join('; ');
        assert.is(got, expected + want, `${name}: ${JSON.stringify(doc)}`);
      }
    }
  }
});

test('validating does not load ajv itself (no schema compiled at run time)', () => {
  const script = `
    import { createRequire } from 'node:module';
    const { validate } = await import('./src/schema/validate.ts');
    validate('lease', { id: 'c1', image: 'sha256:' + 'a'.repeat(64), createdAt: new Date().toISOString() });
    const loaded = Object.keys(createRequire(import.meta.url).cache);
    process.stdout.write(JSON.stringify(loaded.filter((p) => p.includes('node_modules/ajv'))));
  `;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  const loaded = (JSON.parse(out) as string[]).map((p) => p.replace(/.*node_modules\//, ''));
  // Only the runtime helper the lease validator requires (date-time); ajv/dist/ajv.js would mean a compile.
  assert.equal(loaded, ['ajv-formats/dist/formats.js']);
});

test('generated types and validators are up to date with schemas/', () => {
  execFileSync(process.execPath, ['scripts/gen-types.mjs', '--check'], { stdio: 'pipe' });
});

test.run();
