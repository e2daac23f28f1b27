// The daemon's JSON API (schemas/daemon-api.schema.json): one request object per line, one
// response per line. The only place where daemon-side errors become wire errors.
import type { DaemonRequest, DaemonResponse, DaemonStatus } from '../schema/generated/daemon-api.js';
import { parseAndValidate } from '../schema/validate.js';
import { FailedPreconditionError, StrataError } from '../errors.js';
import type { ContainerManager } from './containers.js';

export const API_SCHEMA_REQUEST = 'daemon-api#/definitions/request';
export const API_SCHEMA_RESPONSE = 'daemon-api#/definitions/response';

export function errorResponse(err: unknown): DaemonResponse {
  const kind = err instanceof StrataError ? err.kind : 'Internal';
  return { ok: false, error: { kind, message: err instanceof Error ? err.message : String(err) } };
}

export async function handleApiLine(
  line: string,
  manager: ContainerManager,
  status: () => DaemonStatus,
  handover?: () => Promise<void>,
): Promise<DaemonResponse> {
  try {
    const req = parseAndValidate<DaemonRequest>(API_SCHEMA_REQUEST, line, 'daemon API request');
    switch (req.op) {
      case 'ping':
        return { ok: true };
      case 'status':
        return { ok: true, status: status() };
      case 'list':
        return { ok: true, containers: manager.list() };
      case 'release':
        return { ok: true, released: await manager.release(req.id as string, 'released through the API') };
      case 'handover':
        if (!handover) throw new FailedPreconditionError('this daemon cannot hand its sessions over');
        await handover();
        return { ok: true };
    }
  } catch (err) {
    return errorResponse(err);
  }
}
