// One registry, one repository: the OCI distribution API as the well-kept clients speak it.
//   ping GET /v2/: 200 (no auth), or 401 with the challenge that says how to authenticate;
//   Bearer: a token from the realm for service+scope (with Basic credentials when the user has
//     some), cached per scope until it expires; a 401 on a request with a token fetches a fresh
//     one once (expired token, or error="insufficient_scope" naming the scope it wants);
//   Basic: the user's credentials on every request;
//   manifests: Accept for OCI and Docker schema 2 manifests and indexes, at most 4 MiB, the
//     Content-Type must agree with the document's own mediaType, schema 1 refused by name;
//   blobs: streamed, resumed with Range after a dropped or stalled connection.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DataLossError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  StrataError,
  UnavailableError,
} from '../errors.js';
import type { RegistryToken } from '../schema/generated/registry-token.js';
import { parseAndValidate } from '../schema/validate.js';
import type { Credentials } from './credentials.js';
import {
  Http,
  describeNetworkError,
  header,
  isRetryableNetworkError,
  readBody,
  type HttpResponse,
} from './http.js';
import { endpointHost } from './reference.js';
import { parseWwwAuthenticate, type Challenge } from './www-authenticate.js';

export const MAX_MANIFEST = 4 << 20;
const MAX_TOKEN_RESPONSE = 1 << 20;
const MAX_ERROR_BODY = 64 * 1024;
/** tags/list: bytes of one page, tags in all, tags asked for per page after the first. */
const MAX_TAG_PAGE = 4 << 20;
const MAX_TAGS = 10_000;
const TAG_PAGE = 1000;
/** The distribution spec's tag grammar. */
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
/** A token without expires_in lives 60 s (the token spec's default); refreshed this early. */
const TOKEN_DEFAULT_S = 60;
const TOKEN_MARGIN_MS = 10_000;

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  // Asked for only so that such an answer can be refused by name.
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
  'application/vnd.docker.distribution.manifest.v1+json',
].join(', ');

const SCHEMA1 = /^application\/vnd\.docker\.distribution\.manifest\.v1\+(prettyjws|json)$/;

export interface ClientOptions {
  registry: string;
  repository: string;
  insecure: boolean;
  credentials?: () => Promise<Credentials | undefined>;
  http: Http;
  signal?: AbortSignal;
}

interface CachedToken {
  token: string;
  expires: number;
}

export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

/** Tokens are shared by every client of one pull (same realm/service/scope, same token). */
export type TokenCache = Map<string, CachedToken>;

export class RegistryClient {
  readonly host: string;
  private base: URL | undefined;
  private challenge: Challenge | undefined;
  private creds: Credentials | undefined | null = null;
  private readonly tokens: TokenCache;

  constructor(
    private readonly opts: ClientOptions,
    tokens: TokenCache = new Map(),
  ) {
    this.host = endpointHost(opts.registry);
    this.tokens = tokens;
  }

  get description(): string {
    return `${this.opts.registry}/${this.opts.repository}`;
  }

  private async credentials(): Promise<Credentials | undefined> {
    if (this.creds === null) this.creds = (await this.opts.credentials?.()) ?? undefined;
    return this.creds;
  }

  /**
   * GET /v2/: learns the scheme (https, or http for an insecure registry that does not speak
   * TLS) and the auth challenge.
   */
  async ping(): Promise<void> {
    if (this.base) return;
    const schemes = this.opts.insecure ? ['https:', 'http:'] : ['https:'];
    let lastErr: unknown;
    for (const scheme of schemes) {
      const base = new URL(`${scheme}//${this.host}/v2/`);
      let res: HttpResponse;
      try {
        res = await this.opts.http.send(base, this.opts.insecure, { signal: this.opts.signal });
      } catch (err) {
        lastErr = err;
        // An insecure registry may speak plain http: a TLS failure or reset over https says so.
        if (scheme === 'https:' && schemes.length > 1 && err instanceof UnavailableError) continue;
        throw err;
      }
      await res.body.dump().catch(() => {});
      if (res.statusCode === 401) {
        this.challenge = pickChallenge(res, this.host);
      } else if (res.statusCode !== 200 && res.statusCode !== 404) {
        // 404: not a v2 registry root, but some proxies answer it; the real requests tell.
        throw await this.statusError(res, `/v2/ ping`);
      }
      this.base = base;
      return;
    }
    throw lastErr;
  }

  private scope(actions = 'pull'): string {
    return `repository:${this.opts.repository}:${actions}`;
  }

  private async authorization(
    challenge: Challenge | undefined,
    scope: string,
    fresh: boolean,
  ): Promise<string | undefined> {
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') {
      const c = await this.credentials();
      if (!c) {
        throw new FailedPreconditionError(
          `registry ${this.host} requires a login (Basic auth): run \`strata login ${this.opts.registry}\``,
          { op: 'pull', ref: this.description },
        );
      }
      return 'Basic ' + Buffer.from(`${c.username}:${c.password}`).toString('base64');
    }
    if (challenge.scheme === 'bearer') return 'Bearer ' + (await this.token(challenge, scope, fresh));
    throw new FailedPreconditionError(
      `registry ${this.host} asks for ${challenge.scheme} authentication, which strata does not speak`,
      { op: 'pull' },
    );
  }

  private async token(challenge: Challenge, scope: string, fresh: boolean): Promise<string> {
    const realm = challenge.params.realm;
    if (!realm)
      throw new FailedPreconditionError(`registry ${this.host}: Bearer challenge without realm`, {
        op: 'pull',
      });
    const service = challenge.params.service ?? '';
    const key = `${realm}|${service}|${scope}`;
    const cached = this.tokens.get(key);
    if (!fresh && cached && cached.expires > Date.now()) return cached.token;
    this.tokens.delete(key);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new FailedPreconditionError(`registry ${this.host}: bad token realm ${JSON.stringify(realm)}`, {
        op: 'pull',
      });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new FailedPreconditionError(`registry ${this.host}: bad token realm ${realm}`, { op: 'pull' });
    if (service) url.searchParams.set('service', service);
    if (scope) url.searchParams.set('scope', scope);
    const c = await this.credentials();
    const headers: Record<string, string> = { accept: 'application/json' };
    // The realm is another host, chosen by the registry: the user's credentials go there only
    // because the registry's own challenge sends them there, as every client does.
    let authorization: string | undefined;
    let form: string | undefined;
    if (c?.identityToken) {
      // docker's identitytoken is an OAuth2 refresh token: POSTed as a refresh_token grant
      // (distribution's oauth spec, as docker and containers/image do), never as Basic.
      form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: c.identityToken,
        service,
        scope,
        client_id: 'strata',
      }).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
      url.search = '';
    } else if (c) authorization = 'Basic ' + Buffer.from(`${c.username}:${c.password}`).toString('base64');
    const res = await this.opts.http.send(url, this.opts.insecure, {
      headers,
      authorization,
      authHost: url.host,
      signal: this.opts.signal,
      ...(form !== undefined ? { method: 'POST' as const, body: form } : {}),
    });
    if (res.statusCode !== 200) {
      const body = await readBody(res, MAX_ERROR_BODY, `token from ${url.host}`).catch(() => Buffer.alloc(0));
      const why =
        res.statusCode === 401 || res.statusCode === 403
          ? c
            ? `credentials from ${c.from} refused`
            : 'anonymous access refused'
          : `HTTP ${res.statusCode}`;
      throw new FailedPreconditionError(
        `registry ${this.host}: token server ${url.host} said ${res.statusCode} for ${scope}: ${why}${errorSummary(body)}`,
        { op: 'pull', ref: this.description },
      );
    }
    const body = await readBody(res, MAX_TOKEN_RESPONSE, `token from ${url.host}`);
    const t = parseAndValidate<RegistryToken>('registry-token', body, `token from ${url.host}`);
    const token = t.token ?? t.access_token;
    if (!token)
      throw new FailedPreconditionError(`token server ${url.host} answered without a token`, { op: 'pull' });
    const lifetime = (t.expires_in && t.expires_in > 0 ? t.expires_in : TOKEN_DEFAULT_S) * 1000;
    const issued = t.issued_at ? Date.parse(t.issued_at) : NaN;
    const start = Number.isFinite(issued) && issued <= Date.now() ? issued : Date.now();
    this.tokens.set(key, { token, expires: start + lifetime - TOKEN_MARGIN_MS });
    return token;
  }

  /**
   * An authenticated GET of `path` under /v2/. On 401 with a token: one fresh token (scope from
   * the insufficient_scope challenge if it names one), then the 401 is the caller's to report.
   */
  async get(path: string, headers: Record<string, string> = {}, retry = true): Promise<HttpResponse> {
    await this.ping();
    const url = new URL(path, this.base);
    let scope = this.scope();
    let auth = await this.authorization(this.challenge, scope, false);
    for (let tries = 0; ; tries++) {
      const res = await this.opts.http.send(url, this.opts.insecure, {
        headers,
        authorization: auth,
        authHost: url.host,
        signal: this.opts.signal,
        retry,
      });
      if (res.statusCode !== 401 || tries > 0) return res;
      const challenge = pickChallenge(res, this.host);
      if (!challenge || (auth === undefined && !challenge)) return res;
      await res.body.dump().catch(() => {});
      if (challenge.params.error === 'insufficient_scope' && challenge.params.scope)
        scope = challenge.params.scope;
      this.challenge = challenge;
      auth = await this.authorization(challenge, scope, true);
    }
  }

  /** `strata login`: GET /v2/ with the credentials (Basic, or a token without scope). */
  async checkLogin(): Promise<boolean> {
    await this.ping();
    if (!this.challenge) return true;
    let auth: string | undefined;
    try {
      auth = await this.authorization(this.challenge, '', true);
    } catch (err) {
      if (err instanceof FailedPreconditionError && /refused/.test(err.message)) return false;
      throw err;
    }
    const res = await this.opts.http.send(this.base!, this.opts.insecure, {
      authorization: auth,
      signal: this.opts.signal,
    });
    await res.body.dump().catch(() => {});
    return res.statusCode === 200;
  }

  /** The manifest or index for a tag or digest, checked (size, schema 1, Content-Type, digest). */
  async manifest(
    reference: string,
    expect?: { digest: string; size?: number; mediaType?: string },
  ): Promise<FetchedManifest> {
    const res = await this.get(`${this.opts.repository}/manifests/${reference}`, { accept: MANIFEST_ACCEPT });
    const what = `manifest ${this.description}:${reference} from ${this.host}`;
    if (res.statusCode !== 200) throw await this.statusError(res, what, reference);
    const bytes = await readBody(res, MAX_MANIFEST, what);
    const contentType = (header(res.headers, 'content-type') ?? '').split(';')[0].trim();
    let doc: { schemaVersion?: unknown; mediaType?: unknown };
    try {
      doc = JSON.parse(bytes.toString('utf8')) as typeof doc;
    } catch {
      throw new InvalidArgumentError(`${what} is not JSON`, { op: 'pull' });
    }
    if (SCHEMA1.test(contentType) || doc.schemaVersion === 1) {
      throw new InvalidArgumentError(
        `${what} is a Docker schema 1 manifest, a format deprecated since 2017 that strata does not read; ` +
          `push the image again with a current docker, podman or skopeo`,
        { op: 'pull' },
      );
    }
    const own = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
    if (own !== undefined && contentType !== '' && contentType !== own) {
      throw new InvalidArgumentError(`${what}: Content-Type ${contentType} but the document says ${own}`, {
        op: 'pull',
      });
    }
    const mediaType = own ?? contentType;
    if (!mediaType)
      throw new InvalidArgumentError(`${what}: no media type (neither Content-Type nor mediaType)`, {
        op: 'pull',
      });
    const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
    const wanted = expect?.digest ?? (reference.includes(':') ? reference : undefined);
    if (wanted !== undefined) {
      const got = wanted.startsWith('sha512:')
        ? 'sha512:' + createHash('sha512').update(bytes).digest('hex')
        : digest;
      if (got !== wanted) {
        throw new DataLossError(`${what}: content has digest ${got}, expected ${wanted}`, {
          op: 'pull',
          digest: wanted,
        });
      }
    }
    if (expect?.size !== undefined && bytes.length !== expect.size) {
      throw new DataLossError(`${what}: ${bytes.length} bytes, descriptor says ${expect.size}`, {
        op: 'pull',
      });
    }
    if (expect?.mediaType !== undefined && expect.mediaType !== mediaType) {
      throw new InvalidArgumentError(
        `${what}: descriptor says ${expect.mediaType}, registry says ${mediaType}`,
        { op: 'pull' },
      );
    }
    const claimed = header(res.headers, 'docker-content-digest');
    if (claimed && claimed.startsWith('sha256:') && claimed !== digest) {
      throw new DataLossError(`${what}: Docker-Content-Digest ${claimed} but the content has ${digest}`, {
        op: 'pull',
      });
    }
    return { bytes, mediaType, digest };
  }

  /**
   * Every tag of the repository (`GET /v2/<name>/tags/list`), page after page while the registry
   * sends a Link header, each page asked for after the last tag of the one before (the Link URL
   * itself is not followed: it could name another host). Bounded: MAX_TAG_PAGE bytes a page,
   * MAX_TAGS tags in all; a tag that is not a valid tag name is refused.
   */
  async tags(): Promise<string[]> {
    const all: string[] = [];
    const seen = new Set<string>();
    let last: string | undefined;
    for (;;) {
      const query = last === undefined ? '' : `?last=${encodeURIComponent(last)}&n=${TAG_PAGE}`;
      const res = await this.get(`${this.opts.repository}/tags/list${query}`, { accept: 'application/json' });
      const what = `tags of ${this.description} from ${this.host}`;
      if (res.statusCode !== 200) throw await this.statusError(res, what);
      const body = await readBody(res, MAX_TAG_PAGE, what);
      let doc: { tags?: unknown };
      try {
        doc = JSON.parse(body.toString('utf8')) as typeof doc;
      } catch {
        throw new InvalidArgumentError(`${what} is not JSON`, { op: 'pull' });
      }
      const page = doc.tags ?? [];
      if (!Array.isArray(page))
        throw new InvalidArgumentError(`${what}: "tags" is not a list`, { op: 'pull' });
      let fresh = 0;
      for (const t of page) {
        if (typeof t !== 'string' || !TAG.test(t))
          throw new InvalidArgumentError(`${what}: ${JSON.stringify(t).slice(0, 200)} is not a tag`, {
            op: 'pull',
          });
        if (seen.has(t)) continue;
        seen.add(t);
        all.push(t);
        fresh++;
        if (all.length > MAX_TAGS)
          throw new InvalidArgumentError(`${what}: more than ${MAX_TAGS} tags`, { op: 'pull' });
      }
      // No Link: the last page. A page with nothing new would loop forever: stop there too.
      if (!header(res.headers, 'link') || fresh === 0) return all;
      last = page[page.length - 1] as string;
    }
  }

  /** A small blob (config), read whole; size and digest checked. */
  async smallBlob(desc: { digest: string; size: number }, max: number, what: string): Promise<Buffer> {
    if (desc.size > max)
      throw new InvalidArgumentError(`${what} ${desc.digest}: ${desc.size} bytes, more than ${max}`, {
        op: 'pull',
      });
    const res = await this.get(`${this.opts.repository}/blobs/${desc.digest}`);
    const label = `${what} ${desc.digest} from ${this.host}`;
    if (res.statusCode !== 200) throw await this.statusError(res, label, desc.digest);
    const bytes = await readBody(res, desc.size, label);
    const alg = desc.digest.slice(0, desc.digest.indexOf(':'));
    const got = `${alg}:${createHash(alg).update(bytes).digest('hex')}`;
    if (bytes.length !== desc.size || got !== desc.digest) {
      throw new DataLossError(
        `${label}: ${bytes.length} bytes with digest ${got}, expected ${desc.size} bytes`,
        {
          op: 'pull',
          digest: desc.digest,
        },
      );
    }
    return bytes;
  }

  /**
   * A blob's bytes as they arrive. A dropped or stalled connection is resumed with
   * `Range: bytes=N-` (a 206 must start at N; a 200 is skipped up to N); the caller verifies
   * size and digest as it reads.
   */
  blob(
    desc: { digest: string; size: number },
    onRetry?: (offset: number, err: unknown) => void,
    /** Bytes the caller already holds (a kept partial download): the stream starts there. */
    start = 0,
  ): Readable {
    const http = this.opts.http;
    const label = `blob ${desc.digest} of ${this.description} from ${this.host}`;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the generator below is not a method
    const self = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      let got = start;
      for (let attempt = 0; ; attempt++) {
        let res: HttpResponse;
        try {
          res = await self.get(
            `${self.opts.repository}/blobs/${desc.digest}`,
            got > 0 ? { range: `bytes=${got}-` } : {},
          );
        } catch (err) {
          if (
            got > 0 &&
            attempt < http.retries &&
            err instanceof UnavailableError &&
            isRetryableNetworkError(err.cause)
          ) {
            onRetry?.(got, err);
            await sleep(http.delay(attempt), undefined, { signal: self.opts.signal });
            continue;
          }
          throw err;
        }
        let skip = 0;
        if (res.statusCode === 206 && got > 0) {
          const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header(res.headers, 'content-range') ?? '');
          if (!m || Number(m[1]) !== got) {
            res.body.destroy();
            throw new DataLossError(
              `${label}: resumed at ${got} but the registry answered Content-Range ${header(res.headers, 'content-range')}`,
              {
                op: 'pull',
                digest: desc.digest,
              },
            );
          }
        } else if (res.statusCode === 200) {
          skip = got; // the registry ignored Range: drop what we already have
          const len = Number(header(res.headers, 'content-length'));
          if (Number.isFinite(len) && len > desc.size) {
            res.body.destroy();
            throw new DataLossError(
              `${label}: Content-Length ${len}, more than the ${desc.size} bytes its descriptor says`,
              {
                op: 'pull',
                digest: desc.digest,
              },
            );
          }
        } else {
          throw await self.statusError(res, label, desc.digest);
        }
        try {
          for await (const chunk of res.body) {
            let c = chunk as Buffer;
            if (skip > 0) {
              const drop = Math.min(skip, c.length);
              skip -= drop;
              c = c.subarray(drop);
              if (c.length === 0) continue;
            }
            got += c.length;
            yield c;
          }
        } catch (err) {
          res.body.destroy();
          if (attempt < http.retries && isRetryableNetworkError(err)) {
            onRetry?.(got, err);
            await sleep(http.delay(attempt), undefined, { signal: self.opts.signal });
            continue;
          }
          throw describeNetworkError(err, res.url.host, http.timeoutMs);
        }
        if (got < desc.size && attempt < http.retries) {
          // The connection ended early without an error: resume.
          onRetry?.(got, new Error('connection closed early'));
          await sleep(http.delay(attempt), undefined, { signal: self.opts.signal });
          continue;
        }
        return;
      }
    }
    return Readable.from(chunks(), { objectMode: false, highWaterMark: 1 << 20 });
  }

  /** The error for an unexpected status: 401/403 (auth), 404 (unknown), 429/5xx (unavailable). */
  async statusError(res: HttpResponse, what: string, reference?: string): Promise<StrataError> {
    const body = await readBody(res, MAX_ERROR_BODY, what).catch(() => Buffer.alloc(0));
    const summary = errorSummary(body);
    const details = { op: 'pull', ref: this.description };
    if (res.statusCode === 401 || res.statusCode === 403) {
      const c = await this.credentials();
      const who = c
        ? `the credentials from ${c.from} were refused`
        : `no credentials for ${this.opts.registry} (run \`strata login ${this.opts.registry}\`)`;
      return new FailedPreconditionError(
        `${what}: ${res.statusCode} ${res.statusCode === 401 ? 'unauthorized' : 'forbidden'}: ${who}${summary}`,
        details,
      );
    }
    if (res.statusCode === 404) {
      return new NotFoundError(`${what}: not found${reference ? ` (${reference})` : ''}${summary}`, details);
    }
    if (res.statusCode === 429 || res.statusCode >= 500) {
      return new UnavailableError(
        `${what}: registry answered ${res.statusCode} after ${this.opts.http.retries + 1} tries${summary}`,
        details,
      );
    }
    return new FailedPreconditionError(`${what}: unexpected HTTP ${res.statusCode}${summary}`, details);
  }
}

function pickChallenge(res: HttpResponse, host: string): Challenge | undefined {
  const all = parseWwwAuthenticate(res.headers['www-authenticate']);
  const c = all.find((x) => x.scheme === 'bearer') ?? all.find((x) => x.scheme === 'basic') ?? all[0];
  if (!c) {
    throw new FailedPreconditionError(`registry ${host} answered 401 without a WWW-Authenticate challenge`, {
      op: 'pull',
    });
  }
  return c;
}

/** ": MANIFEST_UNKNOWN manifest unknown" from a distribution error body, if it is one. */
function errorSummary(body: Buffer): string {
  try {
    const j = JSON.parse(body.toString('utf8')) as {
      errors?: { code?: unknown; message?: unknown }[];
      details?: unknown;
    };
    const e = j.errors?.[0];
    if (e && typeof e.code === 'string') {
      const msg = typeof e.message === 'string' ? ` ${e.message}` : '';
      return `: ${e.code}${msg}`.slice(0, 300).replace(/[^\x20-\x7e]/g, '?');
    }
  } catch {
    // not a distribution error body
  }
  return '';
}
