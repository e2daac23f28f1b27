// `strata login`: the credentials are tried against the registry (GET /v2/ with them, through
// the Basic or token flow the registry asks for) before anything is saved.
import { FailedPreconditionError } from '../errors.js';
import { RegistryClient } from './client.js';
import { normalizeAuthKey } from './credentials.js';
import { Http } from './http.js';
import { loadRegistriesConf, pullSources } from './registries-conf.js';

/** Checks the login; answers the auth.json key to save it under. */
export async function verifyLogin(
  registry: string,
  username: string,
  password: string,
  tlsVerify?: boolean,
): Promise<string> {
  const key = normalizeAuthKey(registry);
  const host = key.split('/')[0];
  const conf = await loadRegistriesConf();
  const [src] = pullSources(
    conf,
    {
      registry: host,
      repository: key.split('/').slice(1).join('/') || 'x',
      tag: undefined,
      digest: undefined,
    },
    tlsVerify,
  ).slice(-1);
  const http = new Http({ retries: 1 });
  try {
    const client = new RegistryClient({
      registry: host,
      repository: 'x',
      insecure: src.insecure,
      http,
      credentials: async () => ({ username, password, from: 'the given credentials' }),
    });
    const ok = await client.checkLogin();
    if (!ok)
      throw new FailedPreconditionError(`login to ${host} failed: the registry refused the credentials`, {
        op: 'login',
      });
  } finally {
    await http.close();
  }
  return key;
}
