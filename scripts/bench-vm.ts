// VM benchmark (issue 14), in one run on one machine, with the load average:
//
//   boot to agent ready        the VM host's own measure (hypervisor start to the agent's HELLO)
//   first container            `strata run --vm --rm busybox true` with no VM running (boot included)
//   warm --vm run              the same with the VM up (median of N)
//   host run (Node CLI)        `strata run --rm busybox true` through node + the CLI, warm daemon
//   host run (native front)    the same through native/build/Release/strata (what `strata` is)
//   cold walk                  `find / -xdev` of the Debian image in a fresh container: in the VM
//                              (a new FUSE mount in the guest, its metadata answered by the
//                              agent from the tree cache), again in a VM that relays every
//                              request (STRATA_VM_TREE=0), and on the host (drop_caches first,
//                              a new FUSE mount); timed inside
//
// Goals (TCG): warm --vm start <= 3x the host path; walk <= 3x the host walk.
//   npm run bench:vm [-- --runs N]     (after npm run build)
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { cliArgv, frontExecutable } from '../src/executables.js';
import { importImage } from '../src/store/import.js';
import { openStore } from '../src/store/store.js';
import { detectAccel } from '../src/vm/qemu.js';
import { busyboxImage, debianImage } from '../test/fixtures/images.js';
import { vmImageDir } from '../test/fixtures/vm-image.js';
import { startDaemon } from '../test/integration/harness.js';
import { benchDir, loadAverage, median } from './lib/bench-util.js';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 10;
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error('--runs takes a positive integer');

function timedRun(argv: string[], env: NodeJS.ProcessEnv): { ms: number; stdout: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

// Two walks in one container: the first is cold (every lookup goes to the server), the second is
// warm (the guest kernel's dentry and attribute caches answer: the emulated CPU's floor).
const WALK =
  'a=$(date +%s%N); find / -xdev | wc -l >/dev/null; b=$(date +%s%N); find / -xdev | wc -l >/dev/null; ' +
  'c=$(date +%s%N); echo $(( (b - a) / 1000000 )) $(( (c - b) / 1000000 ))';

async function main(): Promise<void> {
  const { dir, cleanup } = await benchDir('strata-bench-vm-');
  let stopDaemon: (() => Promise<unknown>) | undefined;
  const runDir = join(dir, 'rundir');
  const vmRunDir = join(dir, 'vmrun');
  try {
    const store = await openStore(join(dir, 'store'));
    const bb = await busyboxImage();
    await importImage(store, `oci:${bb.ociLayout}:${bb.tag}`, { name: 'busybox' });
    const deb = await debianImage();
    await importImage(store, `oci:${deb.ociLayout}:${deb.tag}`, { name: 'debian' });
    const imageDir = await vmImageDir();
    const daemonEnv = {
      dir,
      storeRoot: store.root,
      socket: join(dir, 'run', 'strata.sock'),
      logFile: join(dir, 'daemon.log'),
    };
    stopDaemon = (await startDaemon(daemonEnv)).stop;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      STRATA_ROOT: store.root,
      STRATA_SOCKET: daemonEnv.socket,
      STRATA_RUN_DIR: runDir,
      STRATA_VM_IMAGE: imageDir,
      STRATA_VM_IDLE_MS: '600000',
      // The VM host logs each container's FUSE requests and its own time answering them.
      STRATA_VM_FUSE_STATS: '1',
    };
    const vm = (args: string[]) => cliArgv(['run', '--vm', '--rm', '--run-dir', vmRunDir, ...args]);
    const host = (args: string[]) => cliArgv(['run', '--rm', ...args]);
    const front = (args: string[]) => [frontExecutable(), 'run', '--rm', ...args];
    const trueArgs = ['--entrypoint', '', 'busybox', '/bin/true'];

    const first = timedRun(vm(trueArgs), env).ms;
    const state = JSON.parse(readFileSync(join(vmRunDir, 'vm', 'default', 'state.json'), 'utf8')) as {
      bootMs: number;
    };
    const series = (argv: string[]) => {
      timedRun(argv, env); // warm-up
      const xs: number[] = [];
      for (let i = 0; i < RUNS; i++) xs.push(timedRun(argv, env).ms);
      return median(xs);
    };
    const warmVm = series(vm(trueArgs));
    const hostNode = series(host(trueArgs));
    const hostFront = series(front(trueArgs));
    const walkArgs = ['--entrypoint', '', 'debian', 'sh', '-c', WALK];
    const walks = (argvOf: (a: string[]) => string[], walkEnv = env) => {
      const cold: number[] = [];
      const warm: number[] = [];
      for (let i = 0; i < Math.max(3, Math.ceil(RUNS / 2)); i++) {
        writeFileSync('/proc/sys/vm/drop_caches', '3');
        const [c, w] = timedRun(argvOf(walkArgs), walkEnv).stdout.trim().split(' ').map(Number);
        cold.push(c);
        warm.push(w);
      }
      return { cold: median(cold), warm: median(warm) };
    };
    const vmWalk = walks(vm);
    // Where a cold walk's time goes: the requests the last walk container relayed to the host
    // (host.log); the guest's agent answers the tree's metadata itself.
    const relay = readFileSync(join(vmRunDir, 'vm', 'default', 'host.log'), 'utf8')
      .split('\n')
      .map((l) => /: (\d+) FUSE requests over (\d+) ms \((\d+) ms answering on the host\)/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => m.slice(1, 4).map(Number))
      .at(-1);
    const hostWalk = walks(host);
    const walkVm = vmWalk.cold;
    const walkHost = hostWalk.cold;
    const stopVm = (dir: string) => {
      const argv = cliArgv(['vm', 'stop', '--run-dir', dir]);
      spawnSync(argv[0], argv.slice(1), { env, stdio: 'ignore' });
    };
    stopVm(vmRunDir);
    // The same walk in a VM whose agent relays every request ($STRATA_VM_TREE=0): what the
    // guest-side tree cache saves, in the same run.
    const relayRunDir = join(dir, 'vmrelay');
    const relayed = (args: string[]) => cliArgv(['run', '--vm', '--rm', '--run-dir', relayRunDir, ...args]);
    timedRun(relayed(trueArgs), { ...env, STRATA_VM_TREE: '0' });
    const relayWalk = walks(relayed, { ...env, STRATA_VM_TREE: '0' });
    stopVm(relayRunDir);

    const load = await loadAverage();
    const f = (ms: number) => `${ms.toFixed(0)} ms`;
    const rows: [string, string][] = [
      [`boot to agent ready (${detectAccel()})`, f(state.bootMs)],
      ['first container (boot included)', f(first)],
      ['warm strata run --vm --rm busybox true', f(warmVm)],
      ['host strata run --rm busybox true (Node CLI)', f(hostNode)],
      ['host strata run --rm busybox true (native front)', f(hostFront)],
      ['cold walk of Debian / in the VM', f(walkVm)],
      ['  the same, every request relayed (STRATA_VM_TREE=0)', f(relayWalk.cold)],
      ['cold walk of Debian / on the host', f(walkHost)],
      ['warm walk in the VM (caches; the emulated CPU)', f(vmWalk.warm)],
      ['warm walk on the host', f(hostWalk.warm)],
      ...(relay
        ? ([
            ['VM walk container: FUSE requests relayed', String(relay[0])],
            ['  the host answering them', `${relay[2].toFixed(0)} ms`],
          ] as [string, string][])
        : []),
    ];
    const w = Math.max(...rows.map((r) => r[0].length));
    process.stdout.write(`bench-vm: median of ${RUNS} runs, load average ${load}\n`);
    for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(w)}  ${v}\n`);
    const startRatio = warmVm / hostNode;
    const walkRatio = walkVm / walkHost;
    process.stdout.write(
      `${startRatio <= 3 ? 'ok  ' : 'MISS'} warm --vm start <= 3x the host path (same Node CLI): ${startRatio.toFixed(2)}x ` +
        `(${(warmVm / hostFront).toFixed(2)}x the native front end)\n` +
        `${walkRatio <= 3 ? 'ok  ' : 'MISS'} cold walk in the VM <= 3x the host walk: ${walkRatio.toFixed(2)}x\n`,
    );
  } finally {
    await stopDaemon?.();
    await cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
