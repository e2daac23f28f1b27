// The HTTP layer of the registry client, on undici (Node 20's fetch has no Agent control,
// ignores proxies and refuses some ports):
//   - one Agent per TLS setting (verify / insecure), or an EnvHttpProxyAgent when HTTP(S)_PROXY
//     is set (it honours NO_PROXY);
//   - redirects followed here (at most MAX_REDIRECTS), Authorization sent only to the registry's
//     own host: a 307 to blob storage on another host never gets the user's credentials;
//   - retries with exponential backoff on 429, 500, 502, 503, 504 and on dropped or stalled
//     connections, honouring Retry-After (seconds or an HTTP date, capped);
//   - every failure turned into a StrataError that names the host and what went wrong.
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, EnvHttpProxyAgent, request, type Dispatcher } from 'undici';
import { FailedPreconditionError, StrataError, UnavailableError } from '../errors.js';

export const MAX_REDIRECTS = 5;
const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);
/** Retry-After is believed up to this (a hostile server must not park us for a day). */
const RETRY_AFTER_MAX_MS = 60_000;

export interface HttpOptions {
  /** Retries after the first try (default 4). */
  retries?: number;
  /** First backoff delay (default 500 ms), doubled per retry, capped at 10 s; jittered. */
  backoffMs?: number;
  /** No response headers, or no body bytes, for this long is a stall (default 30 s). */
  timeoutMs?: number;
  /** Connect timeout (default 10 s). */
  connectTimeoutMs?: number;
  userAgent?: string;
  env?: NodeJS.ProcessEnv;
}

export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  /** The URL that answered (after redirects). */
  url: URL;
}

export interface SendOptions {
  method?: 'GET' | 'HEAD' | 'POST';
  /** A request body (the OAuth2 form of a token request); resent on a 307/308 redirect. */
  body?: string;
  headers?: Record<string, string>;
  /** Sent only while the request stays on this host (the registry). */
  authorization?: string;
  authHost?: string;
  signal?: AbortSignal;
  /** Retry on 429/5xx here (default true); off for requests whose caller retries. */
  retry?: boolean;
}

export function header(h: HttpResponse['headers'], name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Parse Retry-After: delta seconds or an HTTP date; undefined when absent or unparsable. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Math.min(Number(v) * 1000, RETRY_AFTER_MAX_MS);
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.min(Math.max(0, t - now), RETRY_AFTER_MAX_MS);
}

const NETWORK_RETRY = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

function errCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** A transient network failure worth another try. */
export function isRetryableNetworkError(err: unknown): boolean {
  const code = errCode(err);
  return code !== undefined && NETWORK_RETRY.has(code);
}

function isTlsError(code: string | undefined): boolean {
  return (
    code !== undefined &&
    (code.startsWith('ERR_SSL') ||
      code.startsWith('ERR_TLS') ||
      code === 'EPROTO' ||
      /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(code))
  );
}

/** The error a user sees for a failed request to `host`. */
export function describeNetworkError(err: unknown, host: string, timeoutMs: number): StrataError {
  if (err instanceof StrataError) return err;
  const code = errCode(err);
  const msg = (err as Error)?.message ?? String(err);
  const details = { op: 'pull', cause: err };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_FAIL')
    return new UnavailableError(`registry ${host}: cannot resolve the host name (DNS: ${code})`, details);
  if (code === 'ECONNREFUSED')
    return new UnavailableError(`registry ${host} is unreachable: connection refused`, details);
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH')
    return new UnavailableError(`registry ${host} is unreachable (${code})`, details);
  if (code === 'UND_ERR_CONNECT_TIMEOUT')
    return new UnavailableError(`registry ${host}: connection timed out`, details);
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT')
    return new UnavailableError(
      `registry ${host} stalled: nothing received for ${timeoutMs / 1000} s`,
      details,
    );
  if (isTlsError(code))
    return new UnavailableError(
      `registry ${host}: TLS failed (${code}: ${msg}); if this registry is meant to be reached without ` +
        `verified TLS, set insecure = true for it in registries.conf (or pass --tls-verify=false)`,
      details,
    );
  return new UnavailableError(`registry ${host}: ${code ? `${code}: ` : ''}${msg}`, details);
}

export class Http {
  private readonly dispatchers = new Map<boolean, Dispatcher>();
  readonly retries: number;
  readonly backoffMs: number;
  readonly timeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly userAgent: string;
  private readonly env: NodeJS.ProcessEnv;

  constructor(opts: HttpOptions = {}) {
    this.retries = opts.retries ?? 4;
    this.backoffMs = opts.backoffMs ?? 500;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.userAgent = opts.userAgent ?? 'strata/0.1';
    this.env = opts.env ?? process.env;
  }

  private dispatcher(insecure: boolean): Dispatcher {
    let d = this.dispatchers.get(insecure);
    if (d) return d;
    const base = {
      connections: 16,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      connect: { timeout: this.connectTimeoutMs, rejectUnauthorized: !insecure },
    };
    const e = this.env;
    const proxied = e.HTTP_PROXY || e.http_proxy || e.HTTPS_PROXY || e.https_proxy;
    d = proxied
      ? new EnvHttpProxyAgent({
          ...base,
          httpProxy: e.HTTP_PROXY || e.http_proxy,
          httpsProxy: e.HTTPS_PROXY || e.https_proxy,
          noProxy: e.NO_PROXY ?? e.no_proxy,
        })
      : new Agent(base);
    this.dispatchers.set(insecure, d);
    return d;
  }

  async close(): Promise<void> {
    const all = [...this.dispatchers.values()];
    this.dispatchers.clear();
    await Promise.all(all.map((d) => d.close()));
  }

  /** Delay before retry `attempt` (0-based): Retry-After when given, else jittered backoff. */
  delay(attempt: number, retryAfter?: string): number {
    const given = retryAfterMs(retryAfter);
    if (given !== undefined) return given;
    const base = Math.min(this.backoffMs * 2 ** attempt, 10_000);
    return base / 2 + Math.random() * (base / 2);
  }

  /**
   * One request with redirects and retries. The response's body must be consumed or destroyed
   * by the caller. 4xx other than 408/429 are returned as they are; a 429/5xx still failing after
   * the retries is returned too (the caller names it).
   */
  async send(url: URL, insecure: boolean, opts: SendOptions = {}): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt++) {
      let res: HttpResponse;
      try {
        res = await this.follow(url, insecure, opts);
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        if (attempt < this.retries && isRetryableNetworkError(err)) {
          await sleep(this.delay(attempt), undefined, { signal: opts.signal });
          continue;
        }
        throw describeNetworkError(err, url.host, this.timeoutMs);
      }
      if (opts.retry !== false && RETRY_STATUS.has(res.statusCode) && attempt < this.retries) {
        await res.body.dump().catch(() => {});
        await sleep(this.delay(attempt, header(res.headers, 'retry-after')), undefined, {
          signal: opts.signal,
        });
        continue;
      }
      return res;
    }
  }

  private async follow(start: URL, insecure: boolean, opts: SendOptions): Promise<HttpResponse> {
    let url = start;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...opts.headers };
      if (opts.authorization && url.host === (opts.authHost ?? start.host))
        headers.authorization = opts.authorization;
      const res = await request(url, {
        method: opts.method ?? 'GET',
        headers,
        ...(opts.body !== undefined ? { body: opts.body } : {}),
        dispatcher: this.dispatcher(insecure),
        signal: opts.signal,
      });
      const location = header(res.headers, 'location');
      if ([301, 302, 303, 307, 308].includes(res.statusCode) && location) {
        await res.body.dump().catch(() => {});
        if (hop >= MAX_REDIRECTS) {
          throw new FailedPreconditionError(`registry ${start.host}: more than ${MAX_REDIRECTS} redirects`, {
            op: 'pull',
          });
        }
        const next = new URL(location, url);
        if (next.protocol !== 'https:' && next.protocol !== 'http:') {
          throw new FailedPreconditionError(`registry ${start.host}: redirect to ${next.protocol} refused`, {
            op: 'pull',
          });
        }
        if (url.protocol === 'https:' && next.protocol === 'http:' && !insecure) {
          throw new FailedPreconditionError(
            `registry ${start.host}: redirect from https to ${next.origin} refused (plain http)`,
            { op: 'pull' },
          );
        }
        url = next;
        continue;
      }
      return { statusCode: res.statusCode, headers: res.headers, body: res.body, url };
    }
  }
}

/** Read a whole body, refusing more than `max` bytes. */
export async function readBody(res: HttpResponse, max: number, what: string): Promise<Buffer> {
  const len = Number(header(res.headers, 'content-length'));
  if (Number.isFinite(len) && len > max) {
    res.body.destroy();
    throw new FailedPreconditionError(`${what}: ${len} bytes, more than the ${max} allowed`, { op: 'pull' });
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of res.body) {
    n += (chunk as Buffer).length;
    if (n > max) {
      res.body.destroy();
      throw new FailedPreconditionError(`${what}: more than the ${max} bytes allowed`, { op: 'pull' });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
