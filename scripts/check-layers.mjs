#!/usr/bin/env node
// The dependency rule of src/, checked by `npm run lint`: every import points down this order, and
// no folders import each other (directly or round a loop). A newcomer can then read the code from
// any layer without meeting the layers above it, and a new front door (an OCI runtime CLI, a shim)
// is one more folder at the top.
//
// A unit is a top-level folder of src/ (src/store/) or a top-level file (src/errors.ts). A unit may
// import a unit in a lower row, never one in its own row or above. Inside a unit, sibling folders
// (src/store/source/, src/store/layer/) may depend on each other one way only: a cycle between
// them is an error too. An import whose target the check cannot read (a computed `import(x)`) is
// an error, so nothing is hidden from it, unless a comment on it or above it says
// `check-layers: computed (why)`.
//
// Usage: node scripts/check-layers.mjs [SRC_DIR]   (default: the repo's src/); exit 1 on a finding.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Top to bottom. */
export const LAYERS = [
  ['cli'],
  ['daemon'],
  ['vm', 'shim'],
  ['run'],
  ['spec', 'mount'],
  ['registry'],
  ['store'],
  ['schema', 'native-addon', 'executables', 'ttrpc'],
  ['errors', 'contract', 'proto'],
];

const SOURCE = /\.(ts|cts|mts|js|cjs|mjs)$/;

function sourceFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (SOURCE.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** Block comments and whole-line comments removed (a `//` inside a string stays). */
function stripComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

/** Every module specifier in `text`, and every dynamic import or require whose target is computed. */
export function specifiers(text) {
  const code = stripComments(text);
  const found = [];
  const literal = [
    /\b(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of literal) for (const m of code.matchAll(re)) found.push({ spec: m[1] });
  // A computed target is an error unless the line, or the one above, says why it may be:
  // `check-layers: computed (REASON)`, for loads that are not modules of src/ (the .node addon).
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (/^\s*(\/\/|\*|\/\*)/.test(line)) return;
    if (/check-layers: computed/.test(line) || /check-layers: computed/.test(lines[i - 1] ?? '')) return;
    for (const m of line.matchAll(/\b(import|require)\s*\(\s*([^'"\s)][^)]*)\)/g)) {
      found.push({ computed: `${m[1]}(${m[2].trim()})`, line: i + 1 });
    }
  });
  return found;
}

/** The unit (first path component, extension dropped) of a path relative to src/. */
function unitOf(rel) {
  return rel.split(sep)[0].replace(SOURCE, '');
}

/** Finds every violation under `srcDir`; returns messages (empty: the tree keeps the rule). */
export function checkLayers(srcDir, layers = LAYERS) {
  const rank = new Map();
  layers.forEach((row, i) => row.forEach((unit) => rank.set(unit, i)));
  const problems = [];
  // Sibling-folder edges inside a unit: "parent/a" -> "parent/b", with one example import each.
  const edges = new Map();

  for (const file of sourceFiles(srcDir)) {
    const rel = relative(srcDir, file);
    const from = unitOf(rel);
    if (!rank.has(from)) {
      problems.push(`${rel}: src/${from} is in no layer (add it to LAYERS in scripts/check-layers.mjs)`);
      continue;
    }
    for (const found of specifiers(readFileSync(file, 'utf8'))) {
      if (found.computed) {
        problems.push(
          `${rel}:${found.line}: ${found.computed} hides its target from this check; import it by name`,
        );
        continue;
      }
      if (!found.spec.startsWith('.')) continue; // node: builtins and packages
      const target = relative(srcDir, resolve(dirname(file), found.spec));
      if (target.startsWith('..')) {
        problems.push(`${rel}: imports ${found.spec}, outside src/`);
        continue;
      }
      const to = unitOf(target);
      if (to === from) {
        const fromDirs = dirname(rel).split(sep);
        const toDirs = dirname(target).split(sep);
        let common = 0;
        while (common < fromDirs.length && common < toDirs.length && fromDirs[common] === toDirs[common])
          common++;
        // A folder and its own subfolders are one piece; only siblings can form a loop.
        if (common < fromDirs.length && common < toDirs.length) {
          const a = fromDirs.slice(0, common + 1).join('/');
          const b = toDirs.slice(0, common + 1).join('/');
          if (!edges.has(a)) edges.set(a, new Map());
          if (!edges.get(a).has(b)) edges.get(a).set(b, `${rel} -> ${found.spec}`);
        }
        continue;
      }
      if (!rank.has(to)) {
        problems.push(`${rel}: imports ${found.spec}, in src/${to}, which is in no layer`);
      } else if (rank.get(to) <= rank.get(from)) {
        const how = rank.get(to) === rank.get(from) ? 'a unit of its own layer' : 'a layer above it';
        problems.push(`${rel}: imports ${found.spec}: ${from}/ may not import ${to}/ (${how})`);
      }
    }
  }

  for (const cycle of findCycles(edges)) {
    const steps = cycle.map((dir, i) => edges.get(dir).get(cycle[(i + 1) % cycle.length]));
    problems.push(`folders import each other: ${[...cycle, cycle[0]].join(' -> ')} (${steps.join('; ')})`);
  }
  return problems;
}

/** One cycle per strongly connected component of more than one folder (Tarjan). */
function findCycles(edges) {
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const cycles = [];
  let next = 0;
  const visit = (v) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) !== index.get(v)) return;
    const component = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      component.unshift(w);
    } while (w !== v);
    if (component.length > 1) cycles.push(cycleWithin(new Set(component), edges));
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

/** A simple cycle through the component's first folder, following edges that stay inside it. */
function cycleWithin(component, edges) {
  const start = [...component][0];
  const path = [start];
  const seen = new Set([start]);
  const walk = (v) => {
    for (const w of edges.get(v)?.keys() ?? []) {
      if (w === start) return true;
      if (!component.has(w) || seen.has(w)) continue;
      seen.add(w);
      path.push(w);
      if (walk(w)) return true;
      path.pop();
    }
    return false;
  };
  walk(start);
  return path;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const srcDir = resolve(process.argv[2] ?? fileURLToPath(new URL('../src', import.meta.url)));
  const problems = checkLayers(srcDir);
  for (const p of problems) process.stderr.write(`check-layers: ${p}\n`);
  if (problems.length > 0) {
    process.stderr.write(
      `check-layers: ${problems.length} problem(s); the order is ${LAYERS.map((r) => r.join(' ')).join(' > ')}\n`,
    );
    process.exit(1);
  }
}
