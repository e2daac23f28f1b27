// Start benchmark: median (and minimum) wall time of one short container (`/bin/sh -c /bin/true` in the busybox
// test image) started in different ways, in one run on one machine:
//
//   runtime on a directory   `crun run` / `runc run` of the image unpacked by umoci: the floor
//   runtime on strata bundle `crun run` / `runc run` of a bundle from `strata bundle`: what the
//                            hooks + daemon add (FUSE root attached in the container), no Node
//   strata run --rm          the CLI as users call it: the native front end (native/build/Release/
//                            strata, what `strata` is on PATH after scripts/setup.sh) asking the
//                            warm daemon, which writes the bundle and prepares the root while
//                            the front end starts the runtime
//   strata run (Node CLI)    the same through node + dist/src/cli/main.js (what `npx strata` runs)
//   node -e 0                what any Node CLI pays before its first line runs
//   podman run --rm          private --root/--runroot, runc (crun fails on this host's cgroups)
//
// crun needs a mount namespace with a pure cgroup2 mount here (docs/architecture.md#host-facts). The plain
// rows make one per run (unshare + mount, as a user would); strata keeps one alive and enters it
// (src/run/cgroup-ns.ts), so a row of crun entering such a namespace (nsenter) shows that floor
// too. The daemon is started once, before timing (warm).
//
//   npm run bench:start [-- --runs N] [-- --only REGEX] [-- --against DIR]   (after npm run build;
//                     --only: the rows whose label matches, e.g. 'kept|strata run --rm \(crun\)$';
//                     --against: another built checkout (e.g. /work/main) with its own daemon on
//                     a copy of the store: its strata run --rm and hooks-path rows run in the same
//                     round-robin, so a before/after comparison holds on a loaded machine)
//
// The rows run round-robin (each row's i-th run next to the others'), so a load that changes
// during the bench hits every row alike; each row prints its median and its minimum. On a
// loaded machine compare within one run, and read the minima as what the mechanism costs.
//   node --import tsx scripts/bench-start.ts [--runs N]   (the CLI rows then pay tsx's loader)
//
// Goals (issue 4): strata adds at most 15 ms to the runtime's own time on a directory, and is at
// least 2x faster than podman run. Issue 13: strata run --rm at most 5 ms over crun run of the
// directory in a kept cgroup2 namespace, and crun run of a strata bundle (the hooks path) at most
// 8 ms over it, both measured in that namespace (the rows without one pay unshare + a cgroup2
// mount, 3-10 ms, on every run).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { writeBundle } from '../src/spec/bundle.js';
import { daemonRequest } from '../src/daemon/client.js';
import { cliArgv, daemonArgv, frontExecutable, hookExecutable } from '../src/executables.js';
import { CgroupNamespace } from '../src/run/cgroup-ns.js';
import { findExecutable } from '../src/run/runtime.js';
import { selectRuntime, runtimeCommand, type Runtime } from '../src/run/runtime.js';
import { PrivatePodman } from '../test/fixtures/private-podman.js';
import { run } from '../test/fixtures/run.js';
import { busyboxStoreWithDaemon } from './lib/bench-daemon.js';
import { benchDir, loadAverage, median } from './lib/bench-util.js';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 20;
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error('--runs takes a positive integer');
// --only REGEX: just the rows whose label matches (the goal lines need the rows they name).
const onlyArg = process.argv.indexOf('--only');
const ONLY = onlyArg > 0 ? new RegExp(process.argv[onlyArg + 1] ?? '') : undefined;
const WARMUP = 3;
const againstArg = process.argv.indexOf('--against');
const AGAINST = againstArg > 0 ? process.argv[againstArg + 1] : undefined;
if (againstArg > 0 && !AGAINST) throw new Error('--against takes the directory of a built checkout');

interface Row {
  label: string;
  argv: (i: number) => [string, string[]];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

function once(row: Row, i: number): number {
  const [cmd, args] = row.argv(i);
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, {
    env: row.env ?? process.env,
    cwd: row.cwd,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0)
    throw new Error(
      `${row.label}: ${[cmd, ...args].join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`,
    );
  return ms;
}

/** Runs the rows round-robin (every row's i-th run next to the others' i-th run), so a change of
 * the machine's load during the bench hits every row alike; medians and minima per row. */
function measureAll(rows: Row[]): Map<string, { median: number; min: number }> {
  const times = new Map<string, number[]>(rows.map((r) => [r.label, []]));
  for (let i = 0; i < WARMUP; i++) for (const row of rows) once(row, i);
  for (let i = 0; i < RUNS; i++)
    for (const row of rows) (times.get(row.label) as number[]).push(once(row, WARMUP + i));
  return new Map(
    rows.map((r) => {
      const t = times.get(r.label) as number[];
      return [r.label, { median: median(t), min: Math.min(...t) }];
    }),
  );
}

function rt(runDir: string, name: 'crun' | 'runc'): Runtime {
  return selectRuntime(runDir, name);
}

async function main(): Promise<void> {
  const { dir, cleanup } = await benchDir('strata-bench-start-');
  let stopDaemon: (() => Promise<unknown>) | undefined;
  let stopOther: (() => Promise<unknown>) | undefined;
  const unshare = findExecutable('unshare');
  const cgroupNs = unshare ? new CgroupNamespace(unshare) : undefined;
  const podman = new PrivatePodman(join(dir, 'pm'));
  try {
    const { img, store, env, stop } = await busyboxStoreWithDaemon(dir);
    stopDaemon = stop;
    const runDir = join(dir, 'rundir');

    // The same image unpacked to a directory, with the same command.
    const dirBundle = join(dir, 'dir-bundle');
    await run('cp', ['-a', img.umociBundle, dirBundle]);
    const cfgPath = join(dirBundle, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as {
      process: { args: string[]; terminal: boolean };
      linux?: { resources?: unknown };
    };
    cfg.process.args = ['/bin/sh', '-c', '/bin/true'];
    cfg.process.terminal = false;
    // umoci's devices rule: crun's eBPF filter needs CAP_SYS_RESOURCE (docs/architecture.md#host-facts);
    // strata's configs carry no resources either.
    delete cfg.linux?.resources;
    writeFileSync(cfgPath, JSON.stringify(cfg));

    const strataBundle = join(dir, 'strata-bundle');
    await writeBundle({
      storeRoot: store.root,
      image: 'busybox',
      dir: strataBundle,
      socketPath: env.socket,
      hookPath: hookExecutable(),
      daemonArgv: daemonArgv({ storeRoot: store.root, socketPath: env.socket }),
      run: { command: ['/bin/true'] },
    });

    // The floor with strata's config (seccomp filter, capabilities, /etc bind mounts, the /data
    // volume) but no hooks: the image directory as root. It splits what the hooks path adds over
    // the plain directory into the config's share and the hooks' + FUSE root's share.
    const cfgBundle = join(dir, 'config-bundle');
    await run('mkdir', ['-p', cfgBundle]);
    const strataCfg = JSON.parse(readFileSync(join(strataBundle, 'config.json'), 'utf8')) as {
      hooks?: unknown;
      root: { path: string };
    };
    delete strataCfg.hooks;
    strataCfg.root.path = join(dirBundle, 'rootfs');
    writeFileSync(join(cfgBundle, 'config.json'), JSON.stringify(strataCfg));

    const cliEnv = {
      ...process.env,
      STRATA_ROOT: store.root,
      STRATA_SOCKET: env.socket,
      STRATA_RUN_DIR: runDir,
    };
    const runtimeRow = (label: string, name: 'crun' | 'runc', bundle: string): Row => ({
      label,
      cwd: bundle,
      argv: (i) => runtimeCommand(rt(runDir, name), ['run', '--bundle', bundle, `bench-${name}-${i}`]),
    });
    const cli = (args: string[]): [string, string[]] => {
      const [cmd, ...rest] = cliArgv(args);
      return [cmd, rest];
    };
    const front = frontExecutable();
    const crunRt = rt(runDir, 'crun');
    const nsPath = crunRt.unshare && cgroupNs ? await cgroupNs.path() : undefined;
    const crunInNamespaceRow = (label: string, bundle: string, prefix: string): Row => ({
      label,
      cwd: bundle,
      argv: (i) => {
        const argv = [crunRt.binary, '--root', crunRt.root, 'run', '--bundle', bundle, `${prefix}-${i}`];
        return nsPath ? ['nsenter', [`--mount=${nsPath}`, '--', ...argv]] : [argv[0], argv.slice(1)];
      },
    });
    const crunInNamespace = crunInNamespaceRow(
      'crun run, directory, in a kept cgroup2 namespace',
      dirBundle,
      'bench-ns',
    );
    const wantPodman = !ONLY || ONLY.test('podman run --rm (runc)');
    if (wantPodman) {
      await podman.init();
      await podman.load(img.dockerArchive);
    }
    const pmArgs = [
      '--root',
      podman.root,
      '--runroot',
      podman.runroot,
      '--storage-driver',
      podman.driver,
      '--runtime',
      'runc',
    ];
    const pmEnv = { ...process.env, CONTAINERS_CONF: join(dir, 'pm', 'containers.conf') };

    const allRows: Row[] = [
      runtimeRow('crun run, directory (umoci unpack)', 'crun', dirBundle),
      crunInNamespace,
      runtimeRow('runc run, directory (umoci unpack)', 'runc', dirBundle),
      runtimeRow('crun run, strata bundle (hooks + daemon)', 'crun', strataBundle),
      crunInNamespaceRow(
        "crun run, directory with a strata bundle's config, no hooks, in the kept namespace",
        cfgBundle,
        'bench-nsc',
      ),
      crunInNamespaceRow('crun run, strata bundle, in a kept cgroup2 namespace', strataBundle, 'bench-nsb'),
      runtimeRow('runc run, strata bundle (hooks + daemon)', 'runc', strataBundle),
      {
        label: 'strata run --rm (crun)',
        env: cliEnv,
        argv: () => [front, ['run', '--rm', '--runtime', 'crun', 'busybox', '/bin/true']],
      },
      {
        label: 'strata run --rm --runtime runc',
        env: cliEnv,
        argv: () => [front, ['run', '--rm', '--runtime', 'runc', 'busybox', '/bin/true']],
      },
      {
        label: 'strata run --rm (crun), Node CLI',
        env: cliEnv,
        argv: () => cli(['run', '--rm', '--runtime', 'crun', 'busybox', '/bin/true']),
      },
      { label: 'node -e 0', argv: () => [process.execPath, ['-e', '0']] },
      {
        label: 'podman run --rm (runc)',
        env: pmEnv,
        argv: () => [
          'podman',
          [...pmArgs, 'run', '--rm', '--network', 'none', img.dockerRef, '/bin/sh', '-c', '/bin/true'],
        ],
      },
    ];
    const rows = ONLY ? allRows.filter((r) => ONLY.test(r.label)) : allRows;
    if (AGAINST) {
      const other = await otherBuild(AGAINST, dir, store.root, env.socket);
      stopOther = other.stop;
      rows.push(
        {
          label: 'strata run --rm (crun), --against build',
          env: other.cliEnv,
          argv: () => [other.front, ['run', '--rm', '--runtime', 'crun', 'busybox', '/bin/true']],
        },
        crunInNamespaceRow(
          'crun run, strata bundle, in a kept cgroup2 namespace, --against build',
          other.bundle,
          'bench-nsa',
        ),
      );
    }

    const load = await loadAverage();
    const measured = measureAll(rows);
    const results = new Map([...measured].map(([l, m]) => [l, m.median]));
    const loadAfter = await loadAverage();
    const width = Math.max(...rows.map((r) => r.label.length));
    process.stdout.write(
      `\nstart time, median (and minimum) of ${RUNS} runs after ${WARMUP} warm-up, rows run round-robin ` +
        `(load before: ${load}; after: ${loadAfter}; ${(cliArgv([]).at(-1) as string).endsWith('.ts') ? 'CLI from sources via tsx' : 'compiled CLI'})\n\n`,
    );
    for (const [label, m] of measured)
      process.stdout.write(
        `  ${label.padEnd(width)}  ${m.median.toFixed(1).padStart(7)} ms  (min ${m.min.toFixed(1).padStart(6)})\n`,
      );

    if (AGAINST) {
      const n = measured.get('crun run, directory, in a kept cgroup2 namespace');
      for (const [mine, theirs] of [
        ['strata run --rm (crun)', 'strata run --rm (crun), --against build'],
        [
          'crun run, strata bundle, in a kept cgroup2 namespace',
          'crun run, strata bundle, in a kept cgroup2 namespace, --against build',
        ],
      ]) {
        const a = measured.get(mine);
        const b = measured.get(theirs);
        if (!a || !b || !n) continue;
        process.stdout.write(
          `  ${mine}: this build +${(a.median - n.median).toFixed(1)} ms (minima +${(a.min - n.min).toFixed(1)}), ` +
            `${AGAINST} +${(b.median - n.median).toFixed(1)} ms (minima +${(b.min - n.min).toFixed(1)}) over crun in the kept namespace\n`,
        );
      }
    }
    const get = (l: string): number => results.get(l) as number;
    if (ONLY) {
      // Only the issue 13 lines whose rows ran.
      for (const l of [
        'strata run --rm (crun)',
        'crun run, strata bundle, in a kept cgroup2 namespace',
        "crun run, directory with a strata bundle's config, no hooks, in the kept namespace",
      ]) {
        const v = measured.get(l);
        const n = measured.get('crun run, directory, in a kept cgroup2 namespace');
        if (n !== undefined && v !== undefined)
          process.stdout.write(
            `  ${l}: +${(v.median - n.median).toFixed(1)} ms over crun in the kept namespace ` +
              `(minima: +${(v.min - n.min).toFixed(1)})\n`,
          );
      }
      return;
    }
    const crunDir = get('crun run, directory (umoci unpack)');
    const crunNs = get('crun run, directory, in a kept cgroup2 namespace');
    const strata = get('strata run --rm (crun)');
    const hooksNs = get('crun run, strata bundle, in a kept cgroup2 namespace');
    const cfgNs = get("crun run, directory with a strata bundle's config, no hooks, in the kept namespace");
    const podmanMs = get('podman run --rm (runc)');
    const added = strata - crunDir;
    process.stdout.write(
      `\n  hooks + daemon add ${(get('crun run, strata bundle (hooks + daemon)') - crunDir).toFixed(1)} ms (crun), ` +
        `${(get('runc run, strata bundle (hooks + daemon)') - get('runc run, directory (umoci unpack)')).toFixed(1)} ms (runc)\n` +
        `  goal: strata run adds <= 15 ms to crun on a directory: +${added.toFixed(1)} ms -> ${added <= 15 ? 'met' : 'NOT met'}` +
        ` (node -e 0 alone: ${get('node -e 0').toFixed(1)} ms)\n` +
        `        against crun in a kept cgroup2 namespace, as strata runs it: +${(strata - crunNs).toFixed(1)} ms\n` +
        `  goal (issue 13): strata run --rm <= 5 ms over crun in a kept cgroup2 namespace: +${(strata - crunNs).toFixed(1)} ms -> ${strata - crunNs <= 5 ? 'met' : 'NOT met'}\n` +
        `  goal (issue 13): crun run of a strata bundle <= 8 ms over it (both in the kept namespace): +${(hooksNs - crunNs).toFixed(1)} ms -> ${hooksNs - crunNs <= 8 ? 'met' : 'NOT met'}\n` +
        `        of which strata's config on a directory (seccomp, capabilities, /etc binds, no hooks): +${(cfgNs - crunNs).toFixed(1)} ms, ` +
        `hooks + FUSE root: +${(hooksNs - cfgNs).toFixed(1)} ms; strata run --rm over that config: +${(strata - cfgNs).toFixed(1)} ms\n` +
        `  goal: >= 2x faster than podman run: ${(podmanMs / strata).toFixed(2)}x -> ${podmanMs / strata >= 2 ? 'met' : 'NOT met'}\n`,
    );
    const min = (l: string): number => (measured.get(l) as { min: number }).min;
    const nsMin = min('crun run, directory, in a kept cgroup2 namespace');
    process.stdout.write(
      `  the same by minima (what the mechanism costs when nothing else runs): strata run --rm ` +
        `+${(min('strata run --rm (crun)') - nsMin).toFixed(1)} ms, crun run of a strata bundle ` +
        `+${(min('crun run, strata bundle, in a kept cgroup2 namespace') - nsMin).toFixed(1)} ms, strata's config alone ` +
        `+${(min("crun run, directory with a strata bundle's config, no hooks, in the kept namespace") - nsMin).toFixed(1)} ms\n`,
    );
  } finally {
    await stopOther?.();
    await stopDaemon?.();
    await podman.destroy().catch(() => undefined);
    await cgroupNs?.stop();
    await cleanup();
  }
}

/** Another built checkout's daemon on a copy of the store, its front end, and a bundle its own
 * `strata bundle` wrote (its hook, its config). */
async function otherBuild(
  checkout: string,
  dir: string,
  storeRoot: string,
  ourSocket: string,
): Promise<{ front: string; cliEnv: NodeJS.ProcessEnv; bundle: string; stop(): Promise<unknown> }> {
  const root = join(dir, 'against');
  const store = join(root, 'store');
  const socket = join(root, 'run', 'strata.sock');
  await run('mkdir', ['-p', join(root, 'run')]);
  await run('cp', ['-a', storeRoot, store]);
  const main = join(checkout, 'dist', 'src', 'cli', 'main.js');
  const cliEnv = {
    ...process.env,
    STRATA_ROOT: store,
    STRATA_SOCKET: socket,
    STRATA_RUN_DIR: join(root, 'rundir'),
  };
  const daemon = spawn(
    process.execPath,
    [main, '--root', store, 'daemon', '--socket', socket, '--log-file', join(root, 'daemon.log')],
    {
      stdio: 'ignore',
    },
  );
  const exited = new Promise((resolve) => daemon.once('exit', resolve));
  const stop = async (): Promise<unknown> => {
    daemon.kill('SIGTERM');
    return exited;
  };
  try {
    for (let waited = 0; !(await pingable(socket)); waited += 50) {
      if (waited > 20_000 || daemon.exitCode !== null)
        throw new Error(`the daemon of ${checkout} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
    if (socket === ourSocket) throw new Error('--against needs its own socket');
    const bundle = join(root, 'bundle');
    await run(process.execPath, [main, 'bundle', 'busybox', bundle, '--', '/bin/true'], { env: cliEnv });
    return { front: join(checkout, 'native', 'build', 'Release', 'strata'), cliEnv, bundle, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function pingable(socket: string): Promise<boolean> {
  try {
    return (await daemonRequest(socket, { op: 'ping' }, 1000)).ok;
  } catch {
    return false;
  }
}

await main();
