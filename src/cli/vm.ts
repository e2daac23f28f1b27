// strata vm serve|ls|stop|rm|exec|logs: the VMs of `strata run --vm` (src/vm/). `serve` is the VM host
// process itself; the first `strata run --vm` starts it.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';

import { resolveRunDir } from '../run/paths.js';
import { resolveRoot } from '../store/store.js';
import { vmStateDir } from '../vm/client.js';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import {
  containerLog,
  hostRunning,
  killStaleHypervisor,
  pidAlive,
  readVmState,
  removeRuntimeFiles,
} from '../vm/host.js';
import type { GlobalArgs } from './context.js';
import { printJson, printTable } from './output.js';

interface VmArgs extends GlobalArgs {
  action: string;
  name?: string;
  'run-dir'?: string;
  'state-dir'?: string;
  json: boolean;
  '--'?: (string | number)[];
}

function names(runDir: string): string[] {
  try {
    return readdirSync(join(runDir, 'vm'));
  } catch {
    return [];
  }
}

async function stopVm(dir: string): Promise<boolean> {
  const st = readVmState(dir);
  if (!st || !pidAlive(st.hostPid)) {
    // A host killed with -9 leaves its hypervisor and sockets: clean them up.
    killStaleHypervisor(dir);
    removeRuntimeFiles(dir);
    return false;
  }
  process.kill(st.hostPid, 'SIGTERM');
  for (let i = 0; i < 200 && pidAlive(st.hostPid); i++) await new Promise((r) => setTimeout(r, 50));
  if (pidAlive(st.hostPid)) process.kill(st.hostPid, 'SIGKILL');
  return true;
}

export const vmCommand: CommandModule<GlobalArgs, VmArgs> = {
  command: 'vm <action> [name]',
  describe:
    "the VMs of `strata run --vm`: ls, stop [NAME], rm [NAME], exec [NAME] -- CMD (in the guest itself, not a container), logs ID (a `run --vm -d` container's output)",
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('action', {
        type: 'string',
        choices: ['ls', 'stop', 'rm', 'serve', 'exec', 'logs'],
        demandOption: true,
      })
      .positional('name', { type: 'string' })
      .option('run-dir', { type: 'string', describe: 'state ($STRATA_RUN_DIR, /run/strata)' })
      .option('state-dir', { type: 'string', describe: 'serve: the VM state directory' })
      .option('json', { type: 'boolean', default: false })
      .parserConfiguration({ 'populate--': true }) as unknown as Argv<VmArgs>,
  handler: async (argv) => {
    const runDir = resolveRunDir(argv['run-dir']);
    if (argv.action === 'serve') {
      const { serveVm } = await import('../vm/serve.js');
      await serveVm(argv['state-dir'] ?? vmStateDir(runDir, argv.name), resolveRoot(argv.root));
      // The VM is down and its files are gone: nothing may keep the host alive past that.
      process.exit(0);
    }
    if (argv.action === 'exec') {
      const cmd = (argv['--'] ?? []).map(String);
      const { execInGuest } = await import('../vm/client.js');
      process.exitCode = await execInGuest(vmStateDir(runDir, argv.name), cmd);
      return;
    }
    if (argv.action === 'logs') {
      // A detached container's output, kept by its VM host (containerLog) in any VM of the run dir.
      const id = argv.name ?? '';
      if (!/^strata-[0-9a-f]{8}-\d+$/.test(id))
        throw new InvalidArgumentError(`strata vm logs: not a container id: ${JSON.stringify(id)}`);
      for (const name of names(runDir)) {
        const path = containerLog(vmStateDir(runDir, name), id);
        if (existsSync(path)) {
          process.stdout.write(readFileSync(path));
          return;
        }
      }
      throw new NotFoundError(`no detached container ${id} in ${runDir}`, { op: 'vm-logs' });
    }
    if (argv.action === 'ls') {
      const rows = names(runDir).map((name) => {
        const dir = vmStateDir(runDir, name);
        const st = readVmState(dir);
        return { name, running: hostRunning(dir), ...st };
      });
      if (argv.json) return printJson(rows);
      printTable(
        ['NAME', 'STATUS', 'BACKEND', 'HOST PID', 'BOOT MS', 'STORE'],
        rows.map((r) => [
          r.name,
          r.running ? 'running' : 'stopped',
          r.backend ?? '',
          r.hostPid ? String(r.hostPid) : '',
          r.bootMs !== undefined ? String(r.bootMs) : '',
          r.storeRoot ?? '',
        ]),
      );
      return;
    }
    const targets = argv.name ? [argv.name] : names(runDir);
    for (const name of targets) {
      const dir = vmStateDir(runDir, name);
      const stopped = await stopVm(dir);
      if (argv.action === 'rm') rmSync(dir, { recursive: true, force: true });
      process.stdout.write(`${name}${stopped ? '' : ' (was not running)'}\n`);
    }
  },
};
