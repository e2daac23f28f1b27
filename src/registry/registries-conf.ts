// registries.conf (containers-registries.conf(5), version 2), read the way containers/image
// does: the system file /etc/containers/registries.conf, or the user's
// $XDG_CONFIG_HOME/containers/registries.conf in its place when that exists, or
// $CONTAINERS_REGISTRIES_CONF alone; then the drop-ins of the matching registries.conf.d/ in
// name order (a scalar set there replaces, a [[registry]] with the same prefix replaces, the
// others add). What strata uses: `unqualified-search-registries`, and per `[[registry]]`
// `prefix`/`location`, `insecure`, `blocked`, `mirror-by-digest-only` and `[[registry.mirror]]`
// (`location`, `insecure`, `pull-from-mirror`). The longest matching prefix wins; "*.example.com"
// prefixes match hosts of that domain.
import { promises as fs } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError, isErrno } from '../errors.js';
import type { QualifiedReference } from './reference.js';
import { parseToml, type TomlTable, type TomlValue } from './toml.js';

export type PullFromMirror = 'all' | 'digest-only' | 'tag-only';

export interface MirrorConf {
  location: string;
  insecure: boolean;
  pullFromMirror: PullFromMirror;
}

export interface RegistryConf {
  prefix: string;
  location: string;
  insecure: boolean;
  blocked: boolean;
  mirrorByDigestOnly: boolean;
  mirrors: MirrorConf[];
  /** The file that set it, for messages. */
  file: string;
}

export interface RegistriesConf {
  unqualifiedSearchRegistries: string[];
  registries: RegistryConf[];
  /** Files read, in order. */
  files: string[];
}

/** Where one pull may come from: a host and the repository on it. */
export interface PullSource {
  registry: string;
  repository: string;
  insecure: boolean;
  mirror: boolean;
}

const MAX_CONF = 1 << 20;

export function emptyRegistriesConf(): RegistriesConf {
  return { unqualifiedSearchRegistries: [], registries: [], files: [] };
}

async function readText(path: string): Promise<string | undefined> {
  try {
    const st = await fs.stat(path);
    if (st.size > MAX_CONF) {
      throw new InvalidArgumentError(`${path}: ${st.size} bytes, too large for registries.conf`, {
        op: 'registries-conf',
        path,
      });
    }
    return await fs.readFile(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    throw err;
  }
}

async function dropIns(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir))
      .filter((f) => f.endsWith('.conf'))
      .sort()
      .map((f) => join(dir, f));
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return [];
    throw err;
  }
}

/** The files to read, in order. */
export async function registriesConfFiles(env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  if (env.CONTAINERS_REGISTRIES_CONF) return [env.CONTAINERS_REGISTRIES_CONF];
  const user = join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'containers');
  const system = '/etc/containers';
  const userMain = join(user, 'registries.conf');
  const main = (await readText(userMain)) !== undefined ? userMain : join(system, 'registries.conf');
  return [
    main,
    ...(await dropIns(join(system, 'registries.conf.d'))),
    ...(await dropIns(join(user, 'registries.conf.d'))),
  ];
}

export async function loadRegistriesConf(
  files?: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<RegistriesConf> {
  const conf = emptyRegistriesConf();
  for (const file of files ?? (await registriesConfFiles(env))) {
    const text = await readText(file);
    if (text === undefined) continue;
    conf.files.push(file);
    mergeInto(conf, parseToml(text, file), file);
  }
  return conf;
}

function str(v: TomlValue | undefined, key: string, file: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw bad(file, `${key} must be a string`);
  return v;
}
function bool(v: TomlValue | undefined, key: string, file: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw bad(file, `${key} must be true or false`);
  return v;
}
function bad(file: string, why: string): InvalidArgumentError {
  return new InvalidArgumentError(`${file}: ${why}`, { op: 'registries-conf', path: file });
}
function tables(v: TomlValue | undefined, key: string, file: string): TomlTable[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((t) => typeof t !== 'object' || t === null || Array.isArray(t)))
    throw bad(file, `${key} must be written [[${key}]]`);
  return v as TomlTable[];
}

/** Exported for tests: one parsed file on top of what came before. */
export function mergeInto(conf: RegistriesConf, t: TomlTable, file: string): void {
  if (t.registries !== undefined) {
    throw bad(
      file,
      'version 1 registries.conf ([registries.search]) is not supported; use unqualified-search-registries',
    );
  }
  const search = t['unqualified-search-registries'];
  if (search !== undefined) {
    if (!Array.isArray(search) || search.some((s) => typeof s !== 'string'))
      throw bad(file, 'unqualified-search-registries must be an array of strings');
    conf.unqualifiedSearchRegistries = search as string[];
  }
  for (const r of tables(t.registry, 'registry', file)) {
    const location = str(r.location, 'location', file);
    const prefix = str(r.prefix, 'prefix', file) ?? location;
    if (!prefix) throw bad(file, '[[registry]] needs a location or a prefix');
    const mirrors = tables(r.mirror, 'registry.mirror', file).map((m): MirrorConf => {
      const loc = str(m.location, 'mirror location', file);
      if (!loc) throw bad(file, `a mirror of ${prefix} has no location`);
      const pull = str(m['pull-from-mirror'], 'pull-from-mirror', file) ?? 'all';
      if (pull !== 'all' && pull !== 'digest-only' && pull !== 'tag-only')
        throw bad(file, `pull-from-mirror must be all, digest-only or tag-only, not ${pull}`);
      return { location: loc, insecure: bool(m.insecure, 'insecure', file) ?? false, pullFromMirror: pull };
    });
    const entry: RegistryConf = {
      prefix,
      location: location ?? prefix,
      insecure: bool(r.insecure, 'insecure', file) ?? false,
      blocked: bool(r.blocked, 'blocked', file) ?? false,
      mirrorByDigestOnly: bool(r['mirror-by-digest-only'], 'mirror-by-digest-only', file) ?? false,
      mirrors,
      file,
    };
    conf.registries = conf.registries.filter((x) => x.prefix !== prefix);
    conf.registries.push(entry);
  }
}

function matchLength(prefix: string, name: string): number {
  if (prefix.startsWith('*.')) {
    const host = name.split('/')[0];
    return host.endsWith(prefix.slice(1)) ? prefix.length : -1;
  }
  if (name === prefix) return prefix.length;
  if (name.startsWith(prefix) && /[/:@]/.test(name[prefix.length])) return prefix.length;
  return -1;
}

/** The [[registry]] entry for a reference: longest matching prefix. */
export function findRegistryConf(conf: RegistriesConf, ref: QualifiedReference): RegistryConf | undefined {
  const name = `${ref.registry}/${ref.repository}`;
  let best: RegistryConf | undefined;
  let len = -1;
  for (const r of conf.registries) {
    const l = matchLength(r.prefix, name);
    if (l > len) {
      best = r;
      len = l;
    }
  }
  return best;
}

function rewrite(
  name: string,
  prefix: string,
  location: string,
  insecure: boolean,
  mirror: boolean,
): PullSource {
  const rewritten = prefix.startsWith('*.') ? name : location + name.slice(prefix.length);
  const slash = rewritten.indexOf('/');
  if (slash <= 0 || slash === rewritten.length - 1) {
    throw new InvalidArgumentError(
      `registries.conf: location ${JSON.stringify(location)} for prefix ${JSON.stringify(prefix)} leaves ${name} no repository`,
      { op: 'registries-conf', ref: name },
    );
  }
  return { registry: rewritten.slice(0, slash), repository: rewritten.slice(slash + 1), insecure, mirror };
}

/**
 * Where to pull `ref` from, in order: the mirrors that may serve it, then the registry itself
 * (rewritten by `location`). FailedPreconditionError when the registry is blocked.
 */
export function pullSources(
  conf: RegistriesConf,
  ref: QualifiedReference,
  tlsVerify?: boolean,
): PullSource[] {
  const name = `${ref.registry}/${ref.repository}`;
  const r = findRegistryConf(conf, ref);
  const insecure = (x: boolean) => (tlsVerify === undefined ? x : !tlsVerify);
  if (!r)
    return [{ registry: ref.registry, repository: ref.repository, insecure: insecure(false), mirror: false }];
  if (r.blocked) {
    throw new FailedPreconditionError(`registry ${r.prefix} is blocked in ${r.file}`, {
      op: 'pull',
      ref: name,
    });
  }
  const byDigest = ref.digest !== undefined;
  const out: PullSource[] = [];
  for (const m of r.mirrors) {
    if (r.mirrorByDigestOnly && !byDigest) continue;
    if (m.pullFromMirror === 'digest-only' && !byDigest) continue;
    if (m.pullFromMirror === 'tag-only' && byDigest) continue;
    out.push(rewrite(name, r.prefix, m.location, insecure(m.insecure), true));
  }
  out.push(rewrite(name, r.prefix, r.location, insecure(r.insecure), false));
  return out;
}
