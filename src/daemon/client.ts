// A JSON API client for the daemon socket: one request, one validated response.
import { connect } from 'node:net';

import type { DaemonRequest, DaemonResponse } from '../schema/generated/daemon-api.js';
import { parseAndValidate } from '../schema/validate.js';
import { UnavailableError } from '../errors.js';
import { API_SCHEMA_RESPONSE } from './api.js';

export function daemonRequest(
  socketPath: string,
  req: DaemonRequest,
  timeoutMs = 10_000,
): Promise<DaemonResponse> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath);
    let buf = '';
    const fail = (err: Error): void => {
      clearTimeout(timer);
      s.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () =>
        fail(
          new UnavailableError(`the strata daemon at ${socketPath} did not answer within ${timeoutMs} ms`),
        ),
      timeoutMs,
    );
    s.on('error', (err) =>
      fail(
        new UnavailableError(`cannot reach the strata daemon at ${socketPath}: ${err.message}`, {
          cause: err,
        }),
      ),
    );
    s.on('connect', () => s.write(JSON.stringify(req) + '\n'));
    s.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      s.end();
      try {
        resolve(
          parseAndValidate<DaemonResponse>(API_SCHEMA_RESPONSE, buf.slice(0, nl), 'daemon API response'),
        );
      } catch (err) {
        reject(err as Error);
      }
    });
    s.on('end', () => {
      if (!buf.includes('\n'))
        fail(new UnavailableError(`the strata daemon at ${socketPath} closed the connection`));
    });
  });
}
