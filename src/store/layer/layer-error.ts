// Errors of one layer's application, each naming the layer (digest and source) and, when one was
// being read, the entry: `layer sha256:… in oci:/x: entry "etc/motd": why`. Errors that come
// from below (the layer stream, the object sink, the tar parser, the filesystem) keep their kind
// and get what they lack.
import {
  AlreadyExistsError,
  DataLossError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  StrataError,
  UnavailableError,
  isErrno,
  type ErrorKind,
  type StrataErrorDetails,
} from '../../errors.js';
import { shorten } from './entry-path.js';

const KINDS: Record<ErrorKind, new (message: string, details?: StrataErrorDetails) => StrataError> = {
  NotFound: NotFoundError,
  AlreadyExists: AlreadyExistsError,
  FailedPrecondition: FailedPreconditionError,
  InvalidArgument: InvalidArgumentError,
  Unavailable: UnavailableError,
  DataLoss: DataLossError,
};

/** "layer sha256:… in SOURCE", or without the source when there is none. */
export function layerName(digest: string, source: string | undefined): string {
  return source ? `layer ${digest} in ${source}` : `layer ${digest}`;
}

export interface EntryContext {
  /** The entry's name as in the tar. */
  name: string;
  /** The size its header gives, and how many of those bytes were read before the error. */
  size?: number;
  read?: number;
}

/** `err` as a StrataError of the same kind whose message names the layer and the entry. */
export function inLayer(err: unknown, layer: string, digest: string, entry?: EntryContext): StrataError {
  const details = { op: 'apply-layer', digest, path: entry?.name, cause: err };
  if (err instanceof StrataError) {
    let msg = err.message;
    if (!msg.includes(digest)) msg = `${layer}: ${entryPart(entry)}${msg}`;
    else if (entry && !msg.includes(JSON.stringify(shorten(entry.name))))
      msg += ` (at entry ${JSON.stringify(shorten(entry.name))})`;
    else return err;
    return new KINDS[err.kind](msg, { ...details, path: err.path ?? entry?.name });
  }
  const e = err instanceof Error ? err : new Error(String(err));
  if (isErrno(e, 'ENOSPC') || isErrno(e, 'EDQUOT')) {
    return new UnavailableError(`${layer}: ${entryPart(entry)}storing its content: ${e.message}`, details);
  }
  if (isErrno(e) && (e as NodeJS.ErrnoException).syscall !== undefined) {
    return new FailedPreconditionError(`${layer}: ${entryPart(entry)}${e.message}`, details);
  }
  if (entry?.size !== undefined && entry.read !== undefined && entry.read < entry.size) {
    // The tar parser says "Unexpected end of data" or, mid-write, only "Stream was destroyed".
    return new InvalidArgumentError(
      `${layer}: ${entryPart(entry)}the layer's data ends before the ${entry.size} bytes its ` +
        `header gives (truncated layer: ${e.message})`,
      details,
    );
  }
  return new InvalidArgumentError(
    `${layer}: ${entryPart(entry)}not a valid tar stream: ${e.message}`,
    details,
  );
}

function entryPart(entry: EntryContext | undefined): string {
  return entry ? `entry ${JSON.stringify(shorten(entry.name))}: ` : '';
}
