// scripts/check-layers.mjs, run as `npm run lint` runs it: passes on the repository's src/, and
// fails, naming the file and the import, on a small tree that breaks each part of the rule.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const script = fileURLToPath(new URL('../../scripts/check-layers.mjs', import.meta.url));
const dirs: string[] = [];

/** A src/ tree holding `files` (path -> content) in a fresh temporary directory. */
function tree(files: Record<string, string>): string {
  const src = join(mkdtempSync(join(tmpdir(), 'strata-layers-')), 'src');
  dirs.push(dirname(src));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(src, path)), { recursive: true });
    writeFileSync(join(src, path), text);
  }
  return src;
}

function check(srcDir?: string): { status: number | null; stderr: string } {
  const args = srcDir === undefined ? [script] : [script, srcDir];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

test.after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  for (const dir of dirs) assert.not.ok(existsSync(dir), `${dir} left behind`);
});

test("the repository's own src/ keeps the rule", () => {
  const r = check();
  assert.is(r.stderr, '');
  assert.is(r.status, 0);
});

test('imports that point down pass', () => {
  const src = tree({
    'cli/main.ts': "import { a } from '../daemon/a.js';\nimport { e } from '../errors.js';\n",
    'daemon/a.ts': "import { r } from '../run/r.js';\nexport const a = r;\n",
    'run/r.ts': "import type { S } from '../spec/s.js';\nexport const r = 1 as S;\n",
    'spec/s.ts': "export { x } from '../store/x.js';\nexport type S = number;\n",
    'store/x.ts': "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n",
    'errors.ts': 'export const e = 1;\n',
  });
  assert.equal(check(src), { status: 0, stderr: '' });
});

test('an upward import fails, naming the file, the import and the two folders', () => {
  const src = tree({
    'run/client.ts': "import {\n  verb,\n} from '../daemon/run-protocol.js';\nexport const c = verb;\n",
    'daemon/run-protocol.ts': 'export const verb = 1;\n',
  });
  const r = check(src);
  assert.is(r.status, 1);
  assert.match(
    r.stderr,
    'run/client.ts: imports ../daemon/run-protocol.js: run/ may not import daemon/ (a layer above it)',
  );
});

test('units of one row do not import each other', () => {
  const src = tree({
    'spec/a.ts': "export { m } from '../mount/m.js';\n",
    'mount/m.ts': 'export const m = 1;\n',
  });
  const r = check(src);
  assert.is(r.status, 1);
  assert.match(r.stderr, 'spec/ may not import mount/ (a unit of its own layer)');
});

test('a loop between sibling folders inside a unit fails', () => {
  const src = tree({
    'store/source/a.ts': "import { b } from '../layer/b.js';\nexport const a = b;\n",
    'store/layer/b.ts': "import type { A } from '../source/types.js';\nexport const b = 1 as A;\n",
    'store/source/types.ts': 'export type A = number;\n',
    // A folder importing its own subfolder, and back, is one piece: not a loop.
    'store/index.ts': "export { a } from './source/a.js';\n",
    'store/source/up.ts': "export { x } from '../index.js';\n",
  });
  const r = check(src);
  assert.is(r.status, 1);
  assert.match(
    r.stderr,
    /folders import each other: store\/(source|layer) -> store\/(layer|source) -> store\/\1/,
  );
  assert.not.match(r.stderr, 'store -> ');
});

test('a computed import, a folder in no layer and an import out of src/ fail', () => {
  const src = tree({
    'store/lazy.ts': "const spec = '../native-addon.js';\nexport const m = import(spec);\n",
    'vz/boot.ts': 'export const v = 1;\n',
    'run/r.ts': "import { p } from '../../hooks/paths.js';\nexport const r = p;\n",
    // A computed load that says why passes.
    'schema/v.ts':
      '// check-layers: computed (generated validators)\nexport const f = (n: string) => require(`./g/${n}`);\n',
  });
  const r = check(src);
  assert.is(r.status, 1);
  assert.match(r.stderr, 'store/lazy.ts:2: import(spec) hides its target from this check');
  assert.match(r.stderr, 'vz/boot.ts: src/vz is in no layer');
  assert.match(r.stderr, 'run/r.ts: imports ../../hooks/paths.js, outside src/');
  assert.not.match(r.stderr, 'schema/v.ts');
});

test.run();
