// Generated from schemas/registry-auth-file.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * containers-auth.json(5) (podman's auth.json) and docker's config.json, as far as strata reads them: `auths` keyed by registry, registry/namespace or registry/namespace/repo (docker's keys may be URLs), with `auth` = base64(user:password) or an identity token; `credHelpers` per registry and `credsStore` for all (docker-credential-NAME). Other members are kept but not read.
 */
export interface RegistryAuthFile {
  auths?: {
    [k: string]: {
      auth?: string;
      identitytoken?: string;
    };
  };
  credHelpers?: {
    [k: string]: string;
  };
  credsStore?: string;
}
