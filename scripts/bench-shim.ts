// containerd shim benchmark, in one run with a private containerd (test/shim/containerd.ts):
//   - median wall time of `ctr run --rm IMG id true` with containerd's runc shim and with strata's
//     (containerd's image, imported into strata's store by the first run and served by strata,
//     as by default; and the image named by org.strata.image), interleaved in one run
//   - RSS added per extra running container, 10 sleeping containers each: the sum of the
//     containerd-shim-runc-v2 processes' RSS, and the strata daemon's RSS (one process for all)
//
//   npm run bench:shim [-- --runs N]     (after npm run build; prints the load average)
// Goals (issue 10): strata <= 1.0x the runc shim's time; <= 2 MiB per extra container.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

import { daemonPid, IMAGE, RUNTIME, startContainerd, stopDaemon } from '../test/shim/containerd.js';
import { makeEnv, removeEnv } from '../test/integration/harness.js';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 15;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

function pidsNamed(name: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === name.slice(0, 15);
      } catch {
        return false;
      }
    });
}

const env = await makeEnv(['busybox']);
const ctd = await startContainerd(env);
try {
  const runtimes: [string, string[]][] = [
    ['runc shim', []],
    // containerd's image: Containers.Get + Images.Get and a record check, then served by strata.
    ['strata shim', ['--runtime', RUNTIME]],
    // The image named in the spec: no question to containerd.
    ['strata named', ['--runtime', RUNTIME, '--annotation', 'org.strata.image=busybox']],
  ];
  // Warm both (the strata daemon is started by the first run).
  for (const [, rt] of runtimes) await ctd.ctr(['run', '--rm', ...rt, IMAGE, 'warm', 'true']);
  const times = new Map<string, number[]>(runtimes.map(([n]) => [n, []]));
  for (let i = 0; i < RUNS; i++) {
    for (const [name, rt] of runtimes) {
      const t0 = performance.now();
      const r = await ctd.ctr(['run', '--rm', ...rt, IMAGE, `b${i}`, 'true']);
      if (r.exitCode !== 0) throw new Error(`${name}: ${r.stderr}`);
      times.get(name)?.push(performance.now() - t0);
    }
  }
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`ctr run --rm ${IMAGE} true, median of ${RUNS} (load ${load}):`);
  const base = median(times.get('runc shim') ?? []);
  for (const [name] of runtimes) {
    const m = median(times.get(name) ?? []);
    console.log(`  ${name.padEnd(12)} ${m.toFixed(0).padStart(5)} ms  ${(m / base).toFixed(2)}x`);
  }

  const rss = async (name: string, rt: string[], measure: () => number): Promise<number> => {
    await ctd.ctr(['run', '-d', ...rt, IMAGE, `${name}-0`, 'sleep', '600']);
    const one = measure();
    for (let i = 1; i < 10; i++) await ctd.ctr(['run', '-d', ...rt, IMAGE, `${name}-${i}`, 'sleep', '600']);
    const ten = measure();
    for (let i = 0; i < 10; i++) {
      await ctd.ctr(['task', 'kill', '-s', 'SIGKILL', `${name}-${i}`]);
    }
    await new Promise((r) => setTimeout(r, 500));
    for (let i = 0; i < 10; i++) {
      await ctd.ctr(['task', 'delete', '--force', `${name}-${i}`]);
      await ctd.ctr(['container', 'delete', `${name}-${i}`]);
    }
    return (ten - one) / 9 / 1024;
  };
  const runcPer = await rss('r', [], () =>
    pidsNamed('containerd-shim-runc-v2').reduce((a, p) => a + rssKiB(p), 0),
  );
  const dpid = (await daemonPid(env)) ?? 0;
  const strataPer = await rss('s', ['--runtime', RUNTIME], () => rssKiB(dpid));
  console.log(`RSS added per extra running container (10 sleeping):`);
  console.log(`  runc shim    ${runcPer.toFixed(2)} MiB (one Go shim process each)`);
  console.log(`  strata shim  ${strataPer.toFixed(2)} MiB (the daemon serves all)`);
  console.log(`load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
} finally {
  await ctd.stop();
  await stopDaemon(env);
  try {
    execFileSync('sh', ['-c', `grep -o '${env.dir}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l`]);
  } catch {
    // nothing mounted
  }
  removeEnv(env);
}
