// What `strata ps` shows: each record joined with what its runtime says (`list --format json`,
// one call per runtime) and, for detached containers, the monitor's exit-code file.
import { spawnSync } from 'node:child_process';

import { readExitCode } from './detached.js';
import { listIds, readRecord, type ContainerRecord, type RuntimeName } from './record.js';
import { runtimeCommand, runtimeFor, type Runtime } from './runtime.js';

export type ContainerStatus = 'created' | 'running' | 'paused' | 'stopping' | 'exited' | 'unknown';

export interface ContainerInfo extends ContainerRecord {
  status: ContainerStatus;
  /** The container's init pid while it runs. */
  pid?: number;
}

interface RuntimeEntry {
  id: string;
  pid: number;
  status: string;
}

/** The runtime's view of its containers: id -> {pid, status}. */
export function runtimeStates(rt: Runtime): Map<string, RuntimeEntry> {
  const [cmd, args] = runtimeCommand(rt, ['list', '--format', 'json']);
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  const out = new Map<string, RuntimeEntry>();
  if (r.status !== 0) return out; // no state dir yet: nothing runs
  const list = JSON.parse(r.stdout.trim() || '[]') as RuntimeEntry[] | null;
  for (const e of list ?? []) out.set(e.id, e);
  return out;
}

/** The runtime's view of one container, or undefined when it does not know it. */
export function runtimeState(rt: Runtime, id: string): RuntimeEntry | undefined {
  const [cmd, args] = runtimeCommand(rt, ['state', id]);
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  return JSON.parse(r.stdout) as RuntimeEntry;
}

function processAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function describe(
  runDir: string,
  record: ContainerRecord,
  entry: RuntimeEntry | undefined,
): ContainerInfo {
  if (record.exitCode !== undefined) return { ...record, status: 'exited' };
  const exitCode = record.detached ? readExitCode(runDir, record.id) : undefined;
  if (exitCode !== undefined) return { ...record, status: 'exited', exitCode };
  if (entry) {
    const status: ContainerStatus =
      entry.status === 'running' || entry.status === 'created' || entry.status === 'paused'
        ? entry.status
        : entry.status === 'stopped'
          ? 'stopping'
          : 'unknown';
    return { ...record, status, pid: entry.pid || undefined };
  }
  // Not (or no longer) known to the runtime: starting up, just ended, or its owner died.
  if (processAlive(record.ownerPid)) return { ...record, status: 'created' };
  return { ...record, status: record.detached ? 'unknown' : 'exited' };
}

export function listContainers(runDir: string): ContainerInfo[] {
  const records: ContainerRecord[] = [];
  for (const id of listIds(runDir)) {
    try {
      records.push(readRecord(runDir, id));
    } catch {
      // being removed right now, or half-written by a run that is starting
    }
  }
  const states = new Map<RuntimeName, Map<string, RuntimeEntry>>();
  for (const name of new Set(records.map((r) => r.runtime))) {
    try {
      states.set(name, runtimeStates(runtimeFor(runDir, name)));
    } catch {
      states.set(name, new Map());
    }
  }
  return records
    .map((r) => describe(runDir, r, states.get(r.runtime)?.get(r.id)))
    .sort((a, b) => b.created.localeCompare(a.created));
}

export function inspectContainer(runDir: string, id: string): ContainerInfo {
  const record = readRecord(runDir, id);
  return describe(runDir, record, runtimeState(runtimeFor(runDir, record.runtime), id));
}
