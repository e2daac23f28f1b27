// The one contract between C and TypeScript (src/contract/native-contract.json): the header the
// native build compiled against and the TypeScript module hold the same values. The header is
// checked by compiling a program that prints every macro it defines, so what is compared is what
// the C compiler sees, not the generator's idea of it.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { NATIVE_CONTRACT } from '../../src/contract/generated/native-contract.js';

const repo = new URL('../../', import.meta.url).pathname;
const header = join(repo, 'native/generated/strata-contract.h');

type Leaf = string | number | readonly string[];

/** NAME -> value, named as the contract says: STRATA_ + the key path in upper snake case. */
function expectedMacros(): Map<string, string> {
  const out = new Map<string, string>();
  const snake = (k: string) => k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
  const walk = (value: Leaf | object, name: string, key: string): void => {
    if (Array.isArray(value)) {
      const list = value as readonly string[];
      const signals = key.endsWith('Signals');
      out.set(
        name,
        list.map((s) => (signals ? String(constants.signals[s as NodeJS.Signals]) : s)).join('|'),
      );
      out.set(`${name}_COUNT`, String(list.length));
      if (!signals) for (const s of list) out.set(`${name}_${snake(s)}`, s);
    } else if (typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) walk(v as Leaf | object, `${name}_${snake(k)}`, k);
    } else {
      out.set(name, String(value));
    }
  };
  walk(NATIVE_CONTRACT, 'STRATA', '');
  return out;
}

/** NAME -> value as compiled: a program printing each macro of the header. */
function compiledMacros(): Map<string, string> {
  const text = readFileSync(header, 'utf8');
  const defs = [...text.matchAll(/^#define (STRATA_\w+) (.*)$/gm)].map((m) => ({ name: m[1], value: m[2] }));
  const lines = defs.map(({ name, value }) => {
    if (!value.includes(',')) return `  P(${name});`;
    const type = name.endsWith('SIGNALS') ? 'int' : 'const char *';
    const fmt = type === 'int' ? '%d' : '%s';
    return (
      `  { static ${type} a[] = {${name}}; printf("${name}="); ` +
      `for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) printf(i ? "|${fmt}" : "${fmt}", a[i]); putchar('\\n'); }`
    );
  });
  const program = [
    '#include <signal.h>',
    '#include <stdio.h>',
    '#include "strata-contract.h"',
    'static void ps(const char *n, const char *v) { printf("%s=%s\\n", n, v); }',
    'static void pi(const char *n, long v) { printf("%s=%ld\\n", n, v); }',
    '#define P(x) _Generic((x), char *: ps, const char *: ps, default: pi)(#x, x)',
    'int main(void) {',
    ...lines,
    '  return 0;',
    '}',
  ].join('\n');
  const dir = mkdtempSync(join(tmpdir(), 'strata-contract-'));
  try {
    writeFileSync(join(dir, 'print.c'), program);
    execFileSync('cc', [
      '-std=gnu11',
      '-Wall',
      '-Werror',
      '-I',
      join(repo, 'native/generated'),
      '-o',
      join(dir, 'print'),
      join(dir, 'print.c'),
    ]);
    const out = execFileSync(join(dir, 'print'), { encoding: 'utf8' });
    return new Map(
      out
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the header the native build used and the TypeScript module hold the same values', () => {
  const expected = expectedMacros();
  const compiled = compiledMacros();
  assert.equal([...compiled.keys()].sort(), [...expected.keys()].sort(), 'the same names');
  for (const [name, value] of expected) assert.is(compiled.get(name), value, name);
});

test('the generated files are what the contract generates now (no stale header or module)', () => {
  const r = spawnSync(process.execPath, [join(repo, 'scripts/gen-contract.mjs'), '--check'], {
    encoding: 'utf8',
  });
  assert.is(r.status, 0, r.stderr);
});

test('the TypeScript module is the JSON source without its comments', () => {
  const source = JSON.parse(readFileSync(join(repo, 'src/contract/native-contract.json'), 'utf8'));
  const strip = (v: unknown): unknown =>
    Array.isArray(v)
      ? v
      : v !== null && typeof v === 'object'
        ? Object.fromEntries(
            Object.entries(v)
              .filter(([k]) => !k.startsWith('$'))
              .map(([k, x]) => [k, strip(x)]),
          )
        : v;
  assert.equal(NATIVE_CONTRACT, strip(source));
});

test.run();
