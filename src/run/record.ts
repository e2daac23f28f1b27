// Container records: containers/<id>/state.json plus the names/<name> symlink that reserves the
// name. Creating the symlink is the atomic "this name is mine" step, so two `strata run --name x`
// at once end with one container and one clear AlreadyExists error; nothing is scanned to check.
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';

import { writeFileAtomicSync } from '../store/atomic.js';
import {
  AlreadyExistsError,
  DataLossError,
  InvalidArgumentError,
  isErrno,
  NotFoundError,
} from '../errors.js';
import { containerDir, containersDir, namePath, namesDir, statePath } from './paths.js';

export type RuntimeName = 'crun' | 'runc';

export interface ContainerRecord {
  id: string;
  name: string;
  /** The image as the user named it, and the manifest digest it resolved to. */
  image: string;
  imageDigest: string;
  runtime: RuntimeName;
  command: string[];
  created: string;
  detached: boolean;
  /** --rm: the record goes away when the container ends. */
  autoRemove: boolean;
  /** What `strata stop` sends first: the image's StopSignal, else SIGTERM. */
  stopSignal: string;
  /** The `strata run` process of a foreground container (it owns the cleanup). */
  ownerPid?: number;
  /** Set once the container has ended and strata saw how. */
  exitCode?: number;
  finishedAt?: string;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const ID_RE = /^[0-9a-f]{64}$/;

export function newContainerId(): string {
  return randomBytes(32).toString('hex');
}

const ADJECTIVES = [
  'amber',
  'brisk',
  'calm',
  'deft',
  'eager',
  'fond',
  'glad',
  'hardy',
  'keen',
  'lucid',
  'merry',
  'nimble',
  'plucky',
  'quiet',
  'rapid',
  'steady',
  'tidy',
  'vivid',
  'witty',
  'zesty',
];
const NOUNS = [
  'badger',
  'crane',
  'dingo',
  'egret',
  'ferret',
  'gecko',
  'heron',
  'ibis',
  'jackal',
  'koala',
  'lemur',
  'marmot',
  'newt',
  'otter',
  'puffin',
  'quail',
  'raven',
  'stoat',
  'tapir',
  'walrus',
];

/** adjective_noun_NNNN: readable, and 3.2 million of them make a retry on collision rare. */
export function generateName(): string {
  const r = randomBytes(4);
  return `${ADJECTIVES[r[0] % ADJECTIVES.length]}_${NOUNS[r[1] % NOUNS.length]}_${r.readUInt16BE(2) % 10000}`;
}

export function checkName(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new InvalidArgumentError(
      `container name "${name}" is invalid: use letters, digits, "_", "." and "-", starting with a letter or digit`,
      { op: 'run' },
    );
  }
  if (ID_RE.test(name))
    throw new InvalidArgumentError(`container name "${name}" looks like a container id`, { op: 'run' });
  return name;
}

/** Takes `name` for `id`; AlreadyExists names the container that holds it. */
export function reserveName(runDir: string, name: string, id: string): void {
  mkdirSync(namesDir(runDir), { recursive: true, mode: 0o700 });
  try {
    symlinkSync(id, namePath(runDir, name));
  } catch (err) {
    if (!isErrno(err, 'EEXIST')) throw err;
    let holder = '?';
    try {
      holder = readlinkSync(namePath(runDir, name)).slice(0, 12);
    } catch {
      // removed meanwhile: still refuse; a retry will succeed
    }
    throw new AlreadyExistsError(
      `the container name "${name}" is already in use by container ${holder}; remove it (strata rm ${name}) or choose another name`,
      { op: 'run', ref: name },
    );
  }
}

/** Runs `fn` with a fresh generated name reserved for `id`. */
export function reserveGeneratedName(runDir: string, id: string): string {
  for (let i = 0; ; i++) {
    const name = generateName();
    try {
      reserveName(runDir, name, id);
      return name;
    } catch (err) {
      if (!(err instanceof AlreadyExistsError) || i >= 20) throw err;
    }
  }
}

export function releaseName(runDir: string, name: string, id: string): void {
  try {
    // Only our own link: a name released and taken again belongs to the new container.
    if (readlinkSync(namePath(runDir, name)) === id) unlinkSync(namePath(runDir, name));
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
}

export function writeRecord(runDir: string, record: ContainerRecord): void {
  const path = statePath(runDir, record.id);
  mkdirSync(containerDir(runDir, record.id), { recursive: true, mode: 0o700 });
  // Atomic, not fsynced: a record describes processes of this boot (the run dir is /run), and
  // the flushes were on `strata run`'s start path (docs/architecture.md#start-path).
  writeFileAtomicSync(path, JSON.stringify(record, null, 2) + '\n', { mode: 0o600, durable: false });
}

/** Rewrites an existing record; false (and nothing written) when it was removed meanwhile (rm -f). */
export function updateRecord(runDir: string, record: ContainerRecord): boolean {
  try {
    writeFileAtomicSync(statePath(runDir, record.id), JSON.stringify(record, null, 2) + '\n', {
      mode: 0o600,
    });
  } catch (err) {
    // The container's directory went with the record: the temp file could not be made, or the
    // rename found no directory.
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
  return true;
}

function isRecord(v: unknown): v is ContainerRecord {
  const r = v as ContainerRecord;
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.id === 'string' &&
    typeof r.name === 'string' &&
    typeof r.image === 'string' &&
    (r.runtime === 'crun' || r.runtime === 'runc') &&
    Array.isArray(r.command) &&
    typeof r.stopSignal === 'string'
  );
}

export function readRecord(runDir: string, id: string): ContainerRecord {
  const path = statePath(runDir, id);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new NotFoundError(`no container ${id}`, { op: 'container', ref: id });
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new DataLossError(`container record ${path} is not JSON: ${(err as Error).message}`, {
      path,
      cause: err,
    });
  }
  if (!isRecord(parsed) || parsed.id !== id) {
    throw new DataLossError(`container record ${path} is corrupt (remove ${containerDir(runDir, id)})`, {
      path,
    });
  }
  return parsed;
}

/** Removes the record, its bundle and its name. */
export function removeRecord(runDir: string, record: Pick<ContainerRecord, 'id' | 'name'>): void {
  releaseName(runDir, record.name, record.id);
  // A detached container's monitor may write its exit-code file while we remove (rm -f): the
  // directory is then not empty when its turn comes (ENOTEMPTY), and rmSync retries.
  rmSync(containerDir(runDir, record.id), { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
}

/**
 * removeRecord for a foreground container whose runtime has ended, in one rename: the record and
 * its name are gone when this returns (`ps`, `--name` and a listing of the run dir no longer see
 * them), and the directory, moved to `<trashDir>/<id>`, is returned for the caller to delete
 * after answering. Deleting the bundle right after the runtime ends took 15-60 ms under load: its
 * rootfs/ holds the mount points the runtime made (dev, proc, sys, etc/hosts, ...) while the
 * container's mount namespace is still being torn down (docs/architecture.md#start-path).
 * `trashDir` must be on the run dir's filesystem; where it is not (EXDEV), or the move fails
 * otherwise, the directory is deleted here. Undefined when nothing is left to delete.
 */
export function detachRecord(
  runDir: string,
  record: Pick<ContainerRecord, 'id' | 'name'>,
  trashDir: string,
): string | undefined {
  releaseName(runDir, record.name, record.id);
  const from = containerDir(runDir, record.id);
  const to = join(trashDir, record.id);
  try {
    mkdirSync(trashDir, { recursive: true, mode: 0o700 });
    renameSync(from, to);
    return to;
  } catch (err) {
    if (isErrno(err, 'ENOENT') && !existsSync(from)) return undefined;
    rmSync(from, { recursive: true, force: true });
    return undefined;
  }
}

export function listIds(runDir: string): string[] {
  try {
    return readdirSync(containersDir(runDir)).filter((n) => ID_RE.test(n));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw err;
  }
}

/** A name, a full id or a unique id prefix -> the id. */
export function lookupContainer(runDir: string, ref: string): string {
  try {
    return readlinkSync(namePath(runDir, ref));
  } catch (err) {
    if (!isErrno(err, 'ENOENT') && !isErrno(err, 'EINVAL')) throw err;
  }
  const ids = listIds(runDir);
  if (ids.includes(ref)) return ref;
  const matches = /^[0-9a-f]{3,}$/.test(ref) ? ids.filter((id) => id.startsWith(ref)) : [];
  if (matches.length === 1) return matches[0];
  if (matches.length > 1) {
    throw new InvalidArgumentError(`container id prefix ${ref} is ambiguous (${matches.length} containers)`, {
      ref,
    });
  }
  throw new NotFoundError(`no container named or with id ${JSON.stringify(ref)}`, { op: 'container', ref });
}
