#!/usr/bin/env node
// Runs every test/**/*.test.ts file in its own Node process (a test that mounts or spawns must
// not take the others down with it), then prints the one closing line CI reads:
// `N passed, N failed, N skipped`. Arguments are substrings that select files.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const perFileTimeoutMs = Number(process.env.STRATA_TEST_TIMEOUT_MS ?? 15 * 60 * 1000);

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name !== 'corpus') out.push(...findTests(path));
    } else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

// uvu prints "Total: N / Passed: N / Skipped: N" at the end of a directly-run file.
function parseSummary(text) {
  const clean = text.replace(/\x1b\[[0-9;]*m/g, '');
  const num = (label) => {
    const m = clean.match(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'm'));
    return m ? Number(m[1]) : undefined;
  };
  const total = num('Total');
  const passed = num('Passed');
  const skipped = num('Skipped') ?? 0;
  if (total === undefined || passed === undefined) return undefined;
  return { total, passed, skipped };
}

// Run a second time with the FUSE server's native fast path off (docs/architecture.md, "Native
// fast path"): the real-mount proofs hold for both serving paths.
const BOTH_SERVING_PATHS = [
  'test/mount/mount-equivalence.test.ts',
  'test/mount/concurrency.test.ts',
  'test/mount/teardown.test.ts',
  'test/mount/robustness.test.ts',
];

function runFile(file, extraEnv = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FORCE_COLOR: '0', ...extraEnv },
    });
    let output = '';
    let leaked = false; // it, or a process it started, outlived its tests (a leak: the file fails)
    // uvu's summary is its last word: a process still running 30 s after it is held by a handle
    // the test left open (a session, a server, a child): it fails, and is not waited for.
    let lingering;
    const onData = (d) => {
      output += d;
      if (!lingering && /^\s*Duration:/m.test(output))
        lingering = setTimeout(() => {
          output += '\n[run-tests] still running 30 s after its summary: a handle left open (killed)\n';
          leaked = true;
          child.kill('SIGKILL');
        }, 30_000);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => {
      output += `\n[run-tests] timed out after ${perFileTimeoutMs} ms\n`;
      child.kill('SIGKILL');
    }, perFileTimeoutMs);
    let finished = false;
    const finish = (code, signal) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(orphaned);
      clearTimeout(lingering);
      resolve({ code, signal, output, leaked, ms: Date.now() - started });
    };
    // 'close' waits for every holder of the output pipes: a process the test started and left
    // running (with inherited stdio) would hold them for ever. Once the file's own process has
    // exited, its output is taken as complete after 10 s.
    let orphaned;
    child.on('exit', (code, signal) => {
      orphaned = setTimeout(() => {
        output += '\n[run-tests] a process it started still holds its stdout/stderr open\n';
        child.stdout.destroy();
        child.stderr.destroy();
        leaked = true;
        finish(code, signal);
      }, 10_000);
    });
    child.on('close', finish);
  });
}

const filters = process.argv.slice(2);
const files = findTests(join(root, 'test')).filter(
  (f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)),
);
let passed = 0;
let failed = 0;
let skipped = 0;
const runs = files.flatMap((file) => {
  const name = relative(root, file);
  const off = { name: `${name} [fast path off]`, file, env: { STRATA_FUSE_FAST_PATH: '0' } };
  return [{ name, file, env: {} }, ...(BOTH_SERVING_PATHS.includes(name) ? [off] : [])];
});
for (const { name, file, env } of runs) {
  const r = await runFile(file, env);
  const s = parseSummary(r.output);
  // uvu can exit 0 with tests not passed (a throwing before-hook): count from the summary. Its
  // Total counts the tests that ran; test.skip ones are only in Skipped.
  const notPassed = s ? s.total - s.passed : 0;
  const ok = r.code === 0 && s !== undefined && notPassed === 0 && !r.leaked;
  if (s) {
    passed += s.passed;
    skipped += s.skipped;
    failed += notPassed;
  }
  if (!ok && notPassed === 0) failed += 1; // crashed outside a test
  const tag = ok ? 'ok  ' : 'FAIL';
  process.stdout.write(`${tag} ${name} (${s ? `${s.passed}/${s.total}` : 'no summary'}, ${r.ms} ms)\n`);
  if (!ok || process.env.STRATA_TEST_VERBOSE) process.stdout.write(r.output.replace(/^/gm, '    ') + '\n');
  // uvu 0.5 swallows an error thrown by a hook (after.each in its catch, before, a failure it
  // cannot format): the file counts a test not passed and prints no FAIL for it.
  if (notPassed > 0 && !/\bFAIL\b/.test(r.output.replace(/\x1b\[[0-9;]*m/g, '')))
    process.stdout.write(
      `    [run-tests] ${notPassed} not passed with no failure printed: uvu lost an error thrown by a` +
        ` hook (after.each when a test failed, before, or a non-Error); see test/fixtures/checked-test.ts\n`,
    );
  if (!s && r.code === 0) process.stdout.write('    [run-tests] exited 0 without the summary of uvu\n');
}
process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exit(failed > 0 ? 1 : 0);
