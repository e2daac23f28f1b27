#!/usr/bin/env node
// Generates, from every schemas/<name>.schema.json:
//   src/schema/generated/<name>.ts       its TypeScript types (json-schema-to-typescript)
//   src/schema/generated/validators/<name>.cts
//                                      ajv standalone validation code for each of them, so
//                                      validate() compiles no schema at run time (compiling the
//                                      runtime-config schema alone took ~70 ms per CLI command)
//   src/schema/generated/validators.ts   which file holds which schema's validator
// The generated files are committed; test/schema/validate.test.ts fails when they are stale.
// `--check` exits 1 instead of writing when a file would change.
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import standaloneModule from 'ajv/dist/standalone/index.js';
import { compileFromFile } from 'json-schema-to-typescript';
import { readdirSync, readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const schemaDir = join(root, 'schemas');
const outDir = join(root, 'src/schema/generated');
const check = process.argv.includes('--check');
let stale = 0;

function emit(out, text) {
  const old = existsSync(out) ? readFileSync(out, 'utf8') : '';
  if (old === text) return;
  if (check) {
    process.stderr.write(`stale: ${out} (run npm run gen:types)\n`);
    stale++;
  } else writeFileSync(out, text);
}

const names = readdirSync(schemaDir)
  .filter((f) => f.endsWith('.schema.json'))
  .sort()
  .map((f) => f.replace(/\.schema\.json$/, ''));

for (const name of names) {
  const file = `${name}.schema.json`;
  const ts = await compileFromFile(join(schemaDir, file), {
    cwd: schemaDir,
    bannerComment: `// Generated from schemas/${file} by scripts/gen-types.mjs. Do not edit.`,
    additionalProperties: false,
    style: { singleQuote: true, printWidth: 110, trailingComma: 'all' },
  });
  emit(join(outDir, `${name}.ts`), ts);
}

/** The options validate() used to compile with at run time; the error objects stay the same. */
const ajv = new Ajv({
  allErrors: true,
  strict: true,
  allowUnionTypes: true,
  code: { source: true },
});
// ajv-formats is CommonJS: its default export arrives wrapped under ESM.
addFormatsModule.default(ajv);
for (const name of names) {
  ajv.addSchema(JSON.parse(readFileSync(join(schemaDir, `${name}.schema.json`), 'utf8')), name);
}
// One CommonJS module per schema, loaded (with require, so validate() stays synchronous) only when
// that schema is first used: a process that validates one kind of document — the FUSE server
// reads image records — neither parses nor keeps the code of the others (all of them in one
// module cost the server ~1 MiB of RSS). .cts, so that tsc emits .cjs next to the ESM build and
// tsx maps the .cjs name back to it when running from source.
// Sub-schemas validated on their own (validate('daemon-api#/definitions/request', ...)): the
// daemon API's two message kinds. Each entry is one more self-contained validator.
const SUB_SCHEMAS = ['daemon-api#/definitions/request', 'daemon-api#/definitions/response'];
const validatorDir = join(outDir, 'validators');
mkdirSync(validatorDir, { recursive: true });
const files = [...names, ...SUB_SCHEMAS].map((name) => {
  const code = standaloneModule.default(ajv, ajv.getSchema(name));
  if (!code.startsWith('"use strict";module.exports = '))
    throw new Error(`unexpected ajv standalone code for ${name}: ${code.slice(0, 120)}`);
  const file = name.replace(/#\/definitions\//, '.');
  emit(
    join(validatorDir, `${file}.cts`),
    [
      `// Generated from schemas/${name.split('#')[0]}.schema.json by scripts/gen-types.mjs (ajv standalone code). Do not edit.`,
      '// @ts-nocheck',
      code,
      '',
    ].join('\n'),
  );
  return `  '${name}': '${file}.cjs',`;
});
emit(
  join(outDir, 'validators.ts'),
  [
    '// Generated from schemas/*.schema.json by scripts/gen-types.mjs. Do not edit.',
    '',
    '/** schemas/<name>.schema.json (and a few sub-schemas, <name>#/definitions/<d>) -> the module in',
    ' * ./validators/ whose export is its validator. */',
    'export const validatorModules: Record<string, string> = {',
    ...files,
    '};',
    '',
  ].join('\n'),
);
process.exit(stale ? 1 : 0);
