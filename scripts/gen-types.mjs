#!/usr/bin/env node
// Generates, from every schemas/<name>.schema.json:
//   src/spec/generated/<name>.ts       its TypeScript types (json-schema-to-typescript)
//   src/spec/generated/validators.ts   ajv standalone validation code for each of them, so
//                                      validate() compiles no schema at run time (compiling the
//                                      runtime-config schema alone took ~70 ms per CLI command)
// The generated files are committed; test/spec/validate.test.ts fails when they are stale.
// `--check` exits 1 instead of writing when a file would change.
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import standaloneModule from 'ajv/dist/standalone/index.js';
import { compileFromFile } from 'json-schema-to-typescript';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const schemaDir = join(root, 'schemas');
const outDir = join(root, 'src/spec/generated');
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
  code: { source: true, esm: true },
});
// ajv-formats is CommonJS: its default export arrives wrapped under ESM.
addFormatsModule.default(ajv);
for (const name of names) {
  ajv.addSchema(JSON.parse(readFileSync(join(schemaDir, `${name}.schema.json`), 'utf8')), name);
}
// One self-contained module per schema, each wrapped in a factory: V8 only pre-parses a function
// body until it is called, and a module's top level (ajv emits every schema as an object literal
// there) would otherwise run for all schemas on every command, which costs ~7 ms.
// Sub-schemas validated on their own (validate('daemon-api#/definitions/request', ...)): the
// daemon API's two message kinds. Each entry is one more self-contained validator.
const SUB_SCHEMAS = ['daemon-api#/definitions/request', 'daemon-api#/definitions/response'];
const HEAD = /^"use strict";export const validate = (\w+);export default \1;/;
const factories = [...names, ...SUB_SCHEMAS].map((name) => {
  const code = standaloneModule.default(ajv, ajv.getSchema(name));
  const head = HEAD.exec(code);
  if (!head) throw new Error(`unexpected ajv standalone code for ${name}: ${code.slice(0, 120)}`);
  return `  '${name}': () => {\n${code.slice(head[0].length)}\nreturn ${head[1]};\n  },`;
});
emit(
  join(outDir, 'validators.ts'),
  [
    '// Generated from schemas/*.schema.json by scripts/gen-types.mjs (ajv standalone code). Do not edit.',
    '// @ts-nocheck',
    "import { createRequire } from 'node:module';",
    // ajv's "esm" output still loads its runtime helpers (ucs2length, ajv-formats' format
    // functions) with require().
    'const require = createRequire(import.meta.url);',
    '',
    '/** schemas/<name>.schema.json (and a few sub-schemas, <name>#/definitions/<d>) -> a function making',
    ' * its validator (call once, keep the result). */',
    'export const validatorFactories = {',
    ...factories,
    '};',
    '',
  ].join('\n'),
);
process.exit(stale ? 1 : 0);
