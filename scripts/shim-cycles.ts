// The shim's run/delete cycle loop (slow: not in npm test): N `ctr run --rm` through
// containerd-shim-strata-v2 against a private containerd, then checks that nothing is left — no
// mount under the test dir, no task, no runc state, no task bundle, no lease — and that the daemon's fds and
// threads did not grow.
//
//   node --import tsx scripts/shim-cycles.ts [--cycles 100] [--strata-root]   (--strata-root:
//   with org.strata.image=busybox, so the daemon serves each root over FUSE)
import { readdirSync } from 'node:fs';

import {
  childrenOf,
  daemonPid,
  IMAGE,
  RUNTIME,
  startContainerd,
  stopDaemon,
} from '../test/shim/containerd.js';
import { hostMounts, leaseIds, makeEnv, processCounts, removeEnv } from '../test/integration/harness.js';

const arg = process.argv.indexOf('--cycles');
const CYCLES = arg > 0 ? Number(process.argv[arg + 1]) : 100;
const extra = process.argv.includes('--strata-root') ? ['--annotation', 'org.strata.image=busybox'] : [];

const env = await makeEnv(['busybox']);
const before = hostMounts(env);
const ctd = await startContainerd(env);
let failed = 0;
try {
  await ctd.ctr(['run', '--rm', '--runtime', RUNTIME, ...extra, IMAGE, 'warm', 'true']);
  const pid = (await daemonPid(env)) ?? 0;
  const start = processCounts(pid);
  const t0 = performance.now();
  for (let i = 0; i < CYCLES; i++) {
    const r = await ctd.ctr([
      'run',
      '--rm',
      '--runtime',
      RUNTIME,
      ...extra,
      IMAGE,
      `c${i}`,
      'sh',
      '-c',
      `exit ${i % 7}`,
    ]);
    if (r.exitCode !== i % 7) {
      failed++;
      console.log(`cycle ${i}: exit ${r.exitCode}, wanted ${i % 7}: ${r.stderr.trim()}`);
    }
  }
  const ms = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 1000));
  const end = processCounts(pid);
  const problems: string[] = [];
  const mounts = hostMounts(env).filter((m) => !before.includes(m));
  if (mounts.length) problems.push(`mounts left: ${mounts.join('\n')}`);
  const tasks = (await ctd.ctr(['task', 'ls', '-q'])).stdout.trim();
  if (tasks) problems.push(`tasks left: ${tasks}`);
  const runcRoot = `${env.dir}/run/shim/default/runc`;
  const runcLeft = readdirSync(runcRoot);
  if (runcLeft.length) problems.push(`runc state left: ${runcLeft.join(' ')}`);
  const bundles = ctd.harness.bundlesLeft();
  if (bundles.length) problems.push(`task bundles left in containerd's state: ${bundles.join(' ')}`);
  const leases = await leaseIds(env);
  if (leases.length) problems.push(`leases left: ${leases.join(' ')}`);
  if (childrenOf(pid).length) problems.push(`daemon children left: ${childrenOf(pid).join(' ')}`);
  if (end.fds > start.fds) problems.push(`daemon fds grew: ${start.fds} -> ${end.fds}`);
  console.log(
    `${CYCLES} cycles in ${(ms / 1000).toFixed(1)} s (${(ms / CYCLES).toFixed(0)} ms each), ${failed} wrong exit codes; ` +
      `daemon fds ${start.fds} -> ${end.fds}, threads ${start.threads} -> ${end.threads}`,
  );
  for (const p of problems) console.log(p);
  process.exitCode = failed || problems.length ? 1 : 0;
} finally {
  await ctd.stop();
  await stopDaemon(env);
  removeEnv(env);
}
