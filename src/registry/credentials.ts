// Registry credentials from the files and helpers users already have, in the order podman
// (containers/image) reads them (containers-auth.json(5)):
//   1. $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json
//   2. $XDG_CONFIG_HOME/containers/auth.json (~/.config/containers/auth.json)
//   3. $DOCKER_CONFIG/config.json, else ~/.docker/config.json
// In each file the most specific key wins: "host/ns/repo", then "host/ns", then "host" (docker's
// URL keys such as "https://index.docker.io/v1/" count as their host). A `credHelpers` entry for
// the host, or a `credsStore`, runs `docker-credential-NAME get` with the host on stdin.
// `strata login` / `logout` write file 1, as `podman login` does.
import { promises as fs } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { FailedPreconditionError, InvalidArgumentError, isErrno } from '../errors.js';
import type { RegistryAuthFile } from '../schema/generated/registry-auth-file.js';
import { parseAndValidate } from '../schema/validate.js';
import { writeFileAtomic } from '../store/atomic.js';
import { DOCKER_HUB } from './reference.js';

export interface Credentials {
  username: string;
  password: string;
  /** An OAuth2 refresh token (docker's identitytoken) instead of a password. */
  identityToken?: string;
  /** Where they came from, for messages: a file path or "docker-credential-NAME". */
  from: string;
}

type Env = NodeJS.ProcessEnv;
const MAX_AUTH_FILE = 4 << 20;
const HELPER_TIMEOUT_MS = 30_000;

/** The auth.json `strata login` writes (and podman reads first). */
export function authFileForWrite(env: Env = process.env): string {
  if (env.REGISTRY_AUTH_FILE) return env.REGISTRY_AUTH_FILE;
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json');
  return join(configHome(env), 'containers', 'auth.json');
}

function configHome(env: Env): string {
  return env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
}

/** Every file read for credentials, first match wins. */
export function authFiles(env: Env = process.env): string[] {
  const home = env.HOME || homedir();
  return [
    authFileForWrite(env),
    join(configHome(env), 'containers', 'auth.json'),
    join(env.DOCKER_CONFIG || join(home, '.docker'), 'config.json'),
  ].filter((f, i, all) => all.indexOf(f) === i);
}

async function readAuthFile(path: string): Promise<RegistryAuthFile | undefined> {
  let text: Buffer;
  try {
    const fh = await fs.open(path, 'r');
    try {
      const st = await fh.stat();
      if (st.size > MAX_AUTH_FILE) {
        throw new InvalidArgumentError(`${path}: ${st.size} bytes, too large for an auth file`, {
          op: 'credentials',
          path,
        });
      }
      text = await fh.readFile();
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    throw err;
  }
  if (text.toString().trim() === '') return {};
  return parseAndValidate<RegistryAuthFile>('registry-auth-file', text, `auth file ${path}`);
}

/** "https://index.docker.io/v1/" -> "docker.io"; "host/ns" stays. */
export function normalizeAuthKey(key: string): string {
  let k = key.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  if (/^(index\.)?docker\.io(\/v1)?$/.test(k) || k === 'registry-1.docker.io') k = DOCKER_HUB;
  else k = k.replace(/\/v[12]$/, '');
  return k;
}

/** Keys to try for `registry/repository`, most specific first. */
export function authKeys(registry: string, repository: string): string[] {
  const parts = repository.split('/');
  const keys: string[] = [];
  for (let n = parts.length; n >= 1; n--) keys.push(`${registry}/${parts.slice(0, n).join('/')}`);
  keys.push(registry);
  return keys;
}

function decodeAuth(value: string, where: string): { username: string; password: string } {
  const text = Buffer.from(value, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) {
    throw new InvalidArgumentError(`${where}: "auth" is not base64 of user:password`, {
      op: 'credentials',
    });
  }
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

export interface CredentialOptions {
  env?: Env;
  /** Runs docker-credential-NAME (tests replace it). */
  helper?: (name: string, server: string) => Promise<{ Username: string; Secret: string } | undefined>;
}

/** Credentials for `registry/repository`, or undefined (anonymous). */
export async function findCredentials(
  registry: string,
  repository: string,
  opts: CredentialOptions = {},
): Promise<Credentials | undefined> {
  const env = opts.env ?? process.env;
  const keys = authKeys(registry, repository);
  for (const file of authFiles(env)) {
    const data = await readAuthFile(file);
    if (!data) continue;
    const helperName =
      Object.entries(data.credHelpers ?? {}).find(([k]) => normalizeAuthKey(k) === registry)?.[1] ??
      (data.credsStore || undefined);
    const auths = new Map<string, { auth?: string; identitytoken?: string }>();
    for (const [k, v] of Object.entries(data.auths ?? {})) {
      const nk = normalizeAuthKey(k);
      // An exact key beats a URL form of the same key.
      if (!auths.has(nk) || k === nk) auths.set(nk, v);
    }
    for (const key of keys) {
      const entry = auths.get(key);
      if (!entry) continue;
      if (entry.auth) {
        const { username, password } = decodeAuth(entry.auth, `${file} (${key})`);
        return { username, password, identityToken: entry.identitytoken || undefined, from: file };
      }
      if (entry.identitytoken)
        return { username: '', password: '', identityToken: entry.identitytoken, from: file };
    }
    if (helperName) {
      const got = await (opts.helper ?? runHelper)(helperName, registry);
      if (got) {
        const name = `docker-credential-${helperName}`;
        if (got.Username === '<token>')
          return { username: '', password: '', identityToken: got.Secret, from: name };
        return { username: got.Username, password: got.Secret, from: name };
      }
    }
  }
  return undefined;
}

async function runHelper(
  name: string,
  server: string,
): Promise<{ Username: string; Secret: string } | undefined> {
  const exe = `docker-credential-${name}`;
  const r = await execa(exe, ['get'], {
    input: server === DOCKER_HUB ? 'https://index.docker.io/v1/' : server,
    reject: false,
    timeout: HELPER_TIMEOUT_MS,
    maxBuffer: 1 << 20,
  });
  if (r.exitCode !== 0) {
    // "credentials not found in native keychain" is how helpers say "none".
    if (/not found/i.test(String(r.stdout) + String(r.stderr))) return undefined;
    throw new FailedPreconditionError(
      `${exe} get for ${server} failed: ${String(r.stderr || r.stdout || r.shortMessage).slice(0, 500)}`,
      { op: 'credentials' },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(String(r.stdout));
  } catch {
    throw new InvalidArgumentError(`${exe} get for ${server}: output is not JSON`, { op: 'credentials' });
  }
  const o = json as { Username?: unknown; Secret?: unknown };
  if (typeof o.Username !== 'string' || typeof o.Secret !== 'string') {
    throw new InvalidArgumentError(`${exe} get for ${server}: no Username/Secret in its output`, {
      op: 'credentials',
    });
  }
  return { Username: o.Username, Secret: o.Secret };
}

async function rewriteAuthFile(
  file: string,
  change: (auths: Record<string, unknown>) => boolean,
): Promise<boolean> {
  let raw: Record<string, unknown> = {};
  try {
    const text = await fs.readFile(file, 'utf8');
    if (text.trim() !== '') {
      parseAndValidate<RegistryAuthFile>('registry-auth-file', text, `auth file ${file}`);
      raw = JSON.parse(text) as Record<string, unknown>;
    }
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  const auths = (raw.auths ?? {}) as Record<string, unknown>;
  if (!change(auths)) return false;
  raw.auths = auths;
  await fs.mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(dirname(file), file, JSON.stringify(raw, null, '\t') + '\n', {
    mode: 0o600,
    replace: true,
  });
  return true;
}

/** Store `username:password` for `key` (a registry, or registry/namespace) in podman's auth.json. */
export async function saveCredentials(
  key: string,
  username: string,
  password: string,
  env: Env = process.env,
): Promise<string> {
  const file = authFileForWrite(env);
  await rewriteAuthFile(file, (auths) => {
    auths[key] = { auth: Buffer.from(`${username}:${password}`).toString('base64') };
    return true;
  });
  return file;
}

/** Remove `key` (or every entry with `all`); false when there was nothing to remove. */
export async function removeCredentials(key: string | undefined, env: Env = process.env): Promise<boolean> {
  return rewriteAuthFile(authFileForWrite(env), (auths) => {
    const victims = Object.keys(auths).filter((k) => key === undefined || normalizeAuthKey(k) === key);
    for (const k of victims) delete auths[k];
    return victims.length > 0;
  });
}
