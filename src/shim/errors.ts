// The one place where what the Task service throws becomes a ttrpc status (gRPC codes, which
// containerd turns back into errdefs: NotFound, AlreadyExists, FailedPrecondition...).
import { StrataError } from '../errors.js';
import { Code, TtrpcError } from '../ttrpc/status.js';
import type { Status } from '../ttrpc/server.js';

const BY_KIND: Record<StrataError['kind'], number> = {
  NotFound: Code.NotFound,
  AlreadyExists: Code.AlreadyExists,
  FailedPrecondition: Code.FailedPrecondition,
  InvalidArgument: Code.InvalidArgument,
  Unavailable: Code.Unavailable,
  DataLoss: Code.DataLoss,
};

export function toStatus(err: unknown): Status {
  if (err instanceof TtrpcError) return { code: err.code, message: err.message };
  if (err instanceof StrataError) return { code: BY_KIND[err.kind], message: err.message };
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && e.code === 'ENOENT')
    return { code: Code.NotFound, message: e.message };
  return { code: Code.Unknown, message: err instanceof Error ? err.message : String(err) };
}

export function unimplemented(what: string): TtrpcError {
  return new TtrpcError(Code.Unimplemented, what);
}
