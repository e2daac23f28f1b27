// Generated from schemas/registry-token.schema.json by scripts/gen-types.mjs. Do not edit.

/**
 * A token server's answer (distribution's token authentication spec): `token` or `access_token` (OAuth2 name), its lifetime in seconds and when it was issued. One of token / access_token must be there (checked in code).
 */
export interface RegistryToken {
  token?: string;
  access_token?: string;
  expires_in?: number;
  issued_at?: string;
  refresh_token?: string;
}
