// npm run bench:restart — how long a container's reader stalls when the daemon serving its root
// goes away (issue 12). A `strata run -d` container of the Debian image keeps running; a reader
// process on the host reads through its root (/proc/<init>/root: the container's own FUSE mount)
// in a loop: a cold metadata walk of /usr (readdir + lstat of every entry, after drop_caches) and a
// sequential read of every file (each an OPEN the daemon answers; with passthrough the kernel then
// reads the object file itself). Meanwhile the daemon is killed with -9 (the fd holder starts a new
// one), and later replaced with `strata daemon --upgrade`. Printed: the longest time one operation
// took around each event (the stall a reader saw), the time from the kill (or the start of the
// upgrade) to the first operation the new daemon served, failed operations (goal: 0), and the
// load average. Goals: stall <= 1 s after kill -9, <= 50 ms for --upgrade.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { makeEnv, removeEnv, startDaemon } from '../test/integration/harness.js';
import { daemonPid, killDaemon, stopDaemon, strataCli, upgradeDaemon } from '../test/integration/outlive.js';
import { loadAverage } from './lib/bench-util.js';

/** The reader, plain JS for `node -e`: loops until STOP exists, then prints its findings. */
const READER = `
const fs = require('fs'), path = require('path');
const [root, stop, out] = process.argv.slice(1);
const now = () => performance.timeOrigin + performance.now();
const ops = [];  // [start, end] of every op slower than 5 ms
let count = 0, failed = 0; const errors = [];
function op(fn) {
  const t0 = now();
  try { fn(); } catch (e) { failed++; if (errors.length < 5) errors.push(String(e)); }
  const t1 = now(); count++;
  if (t1 - t0 > 5) ops.push([t0, t1]);
  else if (count % 500 === 0) ops.push([t0, t1]);
}
function walk(d, files) {
  let ents = [];
  op(() => { ents = fs.readdirSync(d, { withFileTypes: true }); });
  for (const e of ents) {
    const p = path.join(d, e.name);
    op(() => fs.lstatSync(p));
    if (e.isDirectory()) walk(p, files); else if (e.isFile()) files.push(p);
  }
}
const buf = Buffer.alloc(1 << 20);
outer: for (;;) {
  const files = [];
  walk(root + '/usr', files);
  for (const f of files) {
    if (fs.existsSync(stop)) break outer;
    op(() => { const fd = fs.openSync(f, 'r'); try { while (fs.readSync(fd, buf) > 0); } finally { fs.closeSync(fd); } });
  }
  if (fs.existsSync(stop)) break;
}
fs.writeFileSync(out, JSON.stringify({ count, failed, errors, ops }));
`;

interface ReaderResult {
  count: number;
  failed: number;
  errors: string[];
  ops: [number, number][];
}

function dropCaches(): void {
  writeFileSync('/proc/sys/vm/drop_caches', '3');
}

/** The longest op overlapping [from, to], and the end of the first op that started after `from`
 * and needed the daemon (the end of the op in flight at `from`, else the first slow one). */
function around(r: ReaderResult, from: number, to: number): { stall: number; served: number } {
  let stall = 0;
  let served = Infinity;
  for (const [a, b] of r.ops) {
    if (b < from || a > to) continue;
    stall = Math.max(stall, b - a);
    if (a <= from && b >= from) served = Math.min(served, b - from);
  }
  if (served === Infinity) {
    // Nothing was in flight at that instant: the first op that started after it.
    const next = r.ops.filter(([a]) => a >= from).sort((x, y) => x[0] - y[0])[0];
    served = next ? next[1] - from : NaN;
  }
  return { stall, served };
}

async function main(): Promise<void> {
  const env = await makeEnv(['debian']);
  const stop = join(env.dir, 'stop');
  const out = join(env.dir, 'reader.json');
  let pid = 0;
  try {
    const first = await startDaemon(env);
    pid = first.pid;
    const run = await strataCli(env, ['run', '-d', '--name', 'bench', 'debian', 'sleep', '1000']);
    if (run.code !== 0) throw new Error(`strata run: ${run.stderr}`);
    const id = run.stdout.trim();
    const pidFile = join(env.dir, 'rundir', 'containers', id, 'init.pid');
    const init = Number(readFileSync(pidFile, 'utf8').trim());
    const root = `/proc/${init}/root`;
    if (!readdirSync(`${root}/usr`).length) throw new Error('the container root is empty');

    dropCaches();
    const reader = spawn(process.execPath, ['-e', READER, root, stop, out], { stdio: 'inherit' });
    const ended = new Promise<void>((r) => reader.once('exit', () => r()));
    await new Promise((r) => setTimeout(r, 1500));

    dropCaches();
    const tKill = performance.timeOrigin + performance.now();
    const killed = await killDaemon(env, pid);
    await first.stop();
    pid = killed.pid;
    await new Promise((r) => setTimeout(r, 2000));

    // A reference with no event: the longest op in as long a window, also right after
    // drop_caches (on a loaded machine a cold read alone can take longer than the goal).
    dropCaches();
    const tQuiet = performance.timeOrigin + performance.now();
    await new Promise((r) => setTimeout(r, 2500));

    dropCaches();
    const tUpgrade = performance.timeOrigin + performance.now();
    const upgraded = await upgradeDaemon(env, pid);
    pid = upgraded.pid;
    await new Promise((r) => setTimeout(r, 2000));

    writeFileSync(stop, '');
    await ended;
    const r = JSON.parse(readFileSync(out, 'utf8')) as ReaderResult;
    const k = around(r, tKill, tKill + killed.ms + 1000);
    const u = around(r, tUpgrade, tUpgrade + upgraded.ms + 1000);
    const q = around(r, tQuiet, tQuiet + 2500);
    const load = await loadAverage();
    console.log(`bench:restart  (load average ${load})`);
    console.log(
      `  reader ops: ${r.count}, failed: ${r.failed}${r.errors.length ? ` (${r.errors.join('; ')})` : ''}`,
    );
    console.log(
      `  kill -9:   longest stall ${k.stall.toFixed(1)} ms, kill -> first served ${k.served.toFixed(1)} ms, ` +
        `kill -> new daemon answering ${killed.ms.toFixed(0)} ms   (goal: stall <= 1000 ms)`,
    );
    console.log(
      `  --upgrade: longest stall ${u.stall.toFixed(1)} ms, start -> first served after it ${u.served.toFixed(1)} ms, ` +
        `start -> old daemon gone ${upgraded.ms.toFixed(0)} ms   (goal: stall <= 50 ms)`,
    );
    console.log(`  no event:  longest op ${q.stall.toFixed(1)} ms in 2.5 s after drop_caches (reference)`);
    const log = readFileSync(env.logFile, 'utf8').split('\n');
    // The window with no reader on the connection: the old daemon stopped reading (it answered
    // the handover after that) until the new one serves.
    const gap = log.map((l) => /took over from the running daemon in ([0-9.]+) ms/.exec(l)).find(Boolean);
    if (gap) console.log(`  --upgrade: no reader for at most ${gap[1]} ms (handover request to serving)`);
    for (const line of log.filter((l) => /took over|serving store|handing/.test(l)))
      console.log(`  log: ${line}`);
    console.log(
      `  killed at ${new Date(tKill).toISOString()}, upgrade started at ${new Date(tUpgrade).toISOString()}`,
    );
    await strataCli(env, ['rm', '-f', 'bench']);
  } finally {
    if (!existsSync(stop)) writeFileSync(stop, '');
    const now = (await daemonPid(env)) ?? pid;
    if (now) await stopDaemon(env, now).catch(() => undefined);
    removeEnv(env);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
