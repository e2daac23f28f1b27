#!/usr/bin/env node
// Generates, from src/contract/native-contract.json (the values C and TypeScript share):
//   native/generated/strata-contract.h        the C header the hook and the front end include;
//                                             made at every native build by a binding.gyp
//                                             action (so `npm ci` has it before compiling C),
//                                             not committed
//   src/contract/generated/native-contract.ts the same values `as const` for TypeScript;
//                                             committed (tsc and the tests need it without a
//                                             build step)
// Names in C: STRATA_ + the key path in upper snake case (hook.maxState -> STRATA_HOOK_MAX_STATE).
// A list of strings also gets one macro per element (STRATA_HOOK_STAGES_POSTSTOP) and _COUNT; a
// list under a key ending in "Signals" is a list of signal names, emitted as identifiers. Keys
// starting with "$" are comments.
//
//   node scripts/gen-contract.mjs                 writes both
//   node scripts/gen-contract.mjs --header FILE   writes only the header, to FILE (binding.gyp)
//   node scripts/gen-contract.mjs --check         exits 1 if either file would change
// Only node itself is needed for the header: it runs during `npm ci`.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const source = join(root, 'src/contract/native-contract.json');
const tsOut = join(root, 'src/contract/generated/native-contract.ts');
const defaultHeader = join(root, 'native/generated/strata-contract.h');
const banner = `Generated from ${relative(root, source)} by scripts/gen-contract.mjs. Do not edit.`;

const snake = (key) => key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

/** The contract without its "$comment" keys. */
function strip(value) {
  if (Array.isArray(value)) return value.map(strip);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([k]) => !k.startsWith('$'))
      .map(([k, v]) => [k, strip(v)]),
  );
}

function cString(s) {
  if (!/^[\x20-\x7e]*$/.test(s)) throw new Error(`${JSON.stringify(s)}: only printable ASCII goes into C`);
  return `"${s.replace(/[\\"]/g, '\\$&')}"`;
}

function macros(value, name, key, out) {
  if (Array.isArray(value)) {
    if (!value.every((v) => typeof v === 'string')) throw new Error(`${name}: only lists of strings`);
    if (key.endsWith('Signals')) {
      for (const s of value)
        if (!/^SIG[A-Z0-9]+$/.test(s)) throw new Error(`${name}: ${s} is not a signal name`);
      out.push([name, value.join(', ')]);
    } else {
      out.push([name, value.map(cString).join(', ')]);
      for (const v of value) out.push([`${name}_${snake(v)}`, cString(v)]);
    }
    out.push([`${name}_COUNT`, String(value.length)]);
  } else if (typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) macros(v, `${name}_${snake(k)}`, k, out);
  } else if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`${name}: only integers`);
    out.push([name, String(value)]);
  } else if (typeof value === 'string') {
    out.push([name, cString(value)]);
  } else {
    throw new Error(`${name}: unsupported value ${JSON.stringify(value)}`);
  }
}

export function headerText(contract) {
  const out = [];
  macros(contract, 'STRATA', '', out);
  const seen = new Set();
  for (const [name] of out) {
    if (seen.has(name)) throw new Error(`two values would be named ${name}`);
    seen.add(name);
  }
  return [
    `/* ${banner} */`,
    '#ifndef STRATA_CONTRACT_H',
    '#define STRATA_CONTRACT_H',
    '',
    ...out.map(([name, value]) => `#define ${name} ${value}`),
    '',
    '#endif',
    '',
  ].join('\n');
}

async function tsText(contract) {
  const text = `// ${banner}\nexport const NATIVE_CONTRACT = ${JSON.stringify(contract)} as const;\n`;
  const prettier = await import('prettier');
  const options = (await prettier.resolveConfig(tsOut)) ?? {};
  return prettier.format(text, { ...options, filepath: tsOut });
}

function emit(file, text, check) {
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (old === text) return true;
  if (check) {
    process.stderr.write(`stale: ${relative(root, file)} (run npm run gen:contract)\n`);
    return false;
  }
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  return true;
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const args = process.argv.slice(2);
  const contract = strip(JSON.parse(readFileSync(source, 'utf8')));
  const at = args.indexOf('--header');
  if (at >= 0) {
    if (!args[at + 1]) throw new Error('--header needs a file name');
    emit(args[at + 1], headerText(contract), false);
  } else {
    const check = args.includes('--check');
    const fresh = [
      emit(defaultHeader, headerText(contract), check),
      emit(tsOut, await tsText(contract), check),
    ];
    if (!fresh.every(Boolean)) process.exitCode = 1;
  }
}
