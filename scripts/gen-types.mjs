#!/usr/bin/env node
// Generates src/spec/generated/<name>.ts from every schemas/<name>.schema.json. The generated
// files are committed; test/spec/generated.test.ts fails when they are stale.
// `--check` exits 1 instead of writing when a file would change.
import { compileFromFile } from 'json-schema-to-typescript';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const schemaDir = join(root, 'schemas');
const outDir = join(root, 'src/spec/generated');
const check = process.argv.includes('--check');
let stale = 0;
for (const file of readdirSync(schemaDir).sort()) {
  if (!file.endsWith('.schema.json')) continue;
  const name = file.replace(/\.schema\.json$/, '');
  const ts = await compileFromFile(join(schemaDir, file), {
    cwd: schemaDir,
    bannerComment: `// Generated from schemas/${file} by scripts/gen-types.mjs. Do not edit.`,
    additionalProperties: false,
    style: { singleQuote: true, printWidth: 110, trailingComma: 'all' },
  });
  const out = join(outDir, `${name}.ts`);
  const old = existsSync(out) ? readFileSync(out, 'utf8') : '';
  if (old === ts) continue;
  if (check) {
    process.stderr.write(`stale: ${out} (run npm run gen:types)\n`);
    stale++;
  } else writeFileSync(out, ts);
}
process.exit(stale ? 1 : 0);
