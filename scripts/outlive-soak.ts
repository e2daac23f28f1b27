// npm run soak:outlive — the full loop of issue 12 (test/integration/outlive.test.ts runs 2
// containers and one kill in CI): 10 containers read every file under /etc and /usr of the Debian
// image in a loop, checking each file's sha256; the daemon is killed with -9 five times within
// about 10 s (the fd holder restarts it each time), then replaced with `strata daemon --upgrade`;
// every read must succeed and match, and afterwards nothing may be left. Prints what it saw and
// exits non-zero on any problem. STRATA_SOAK_READERS overrides the number of containers.
import { hostMounts, makeEnv, removeEnv, startDaemon } from '../test/integration/harness.js';
import {
  checkReaders,
  daemonPid,
  killDaemon,
  leftovers,
  morePasses,
  referenceDigests,
  startReaders,
  stopDaemon,
  stopReaders,
  upgradeDaemon,
} from '../test/integration/outlive.js';
import { loadAverage } from './lib/bench-util.js';

async function main(): Promise<void> {
  const n = Number(process.env.STRATA_SOAK_READERS ?? 10);
  const env = await makeEnv(['debian']);
  let pid = 0;
  const problems: string[] = [];
  try {
    const reference = await referenceDigests(env);
    const first = await startDaemon(env);
    pid = first.pid;
    const mountsBefore = hostMounts(env);
    const readers = await startReaders(env, n);
    try {
      if (!(await morePasses(readers, 1, 600_000))) problems.push('not every reader completed a first pass');
      const t0 = performance.now();
      const restarts: number[] = [];
      for (let i = 0; i < 5; i++) {
        const k = await killDaemon(env, pid);
        if (i === 0) await first.stop();
        restarts.push(k.ms);
        pid = k.pid;
        await new Promise((r) => setTimeout(r, 1000));
      }
      console.log(
        `5 kills in ${((performance.now() - t0) / 1000).toFixed(1)} s; kill -> new daemon answering: ` +
          `${restarts.map((ms) => ms.toFixed(0)).join(', ')} ms (load average ${await loadAverage()})`,
      );
      if (!(await morePasses(readers, 1, 600_000))) problems.push('not every reader went on after the kills');
      const u = await upgradeDaemon(env, pid);
      pid = u.pid;
      console.log(`--upgrade: old daemon gone ${u.ms.toFixed(0)} ms after the new one started`);
      if (!(await morePasses(readers, 1, 600_000))) problems.push('not every reader went on after --upgrade');
    } finally {
      if (!(await stopReaders(readers, 600_000))) problems.push('the readers did not stop');
    }
    const checked = checkReaders(readers, reference);
    console.log(`${n} readers, ${checked.passes} passes, ${checked.files} file digests checked`);
    problems.push(...checked.problems);
    if (!(await stopDaemon(env, pid))) problems.push('the daemon or the fd holder did not leave');
    pid = 0;
    problems.push(...(await leftovers(env, mountsBefore)));
  } finally {
    const now = pid ? ((await daemonPid(env)) ?? pid) : 0;
    if (now) await stopDaemon(env, now).catch(() => undefined);
    removeEnv(env);
  }
  if (problems.length) {
    console.log(`PROBLEMS:\n${problems.join('\n')}`);
    process.exitCode = 1;
  } else console.log('every read succeeded and matched; nothing left');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
