// One set of error kinds for the whole core (containerd's errdefs, narrowed). The core throws
// these; only boundaries (CLI, hooks, shim, daemon API) translate them into messages, exit codes
// or wire status codes.

export type ErrorKind =
  'NotFound' | 'AlreadyExists' | 'FailedPrecondition' | 'InvalidArgument' | 'Unavailable' | 'DataLoss';

export interface StrataErrorDetails {
  /** The operation that failed, e.g. "import", "gc", "open-object". */
  op?: string;
  digest?: string;
  ref?: string;
  path?: string;
  cause?: unknown;
}

export class StrataError extends Error {
  readonly kind: ErrorKind;
  readonly op?: string;
  readonly digest?: string;
  readonly ref?: string;
  readonly path?: string;

  constructor(kind: ErrorKind, message: string, details: StrataErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = `${kind}Error`;
    this.kind = kind;
    this.op = details.op;
    this.digest = details.digest;
    this.ref = details.ref;
    this.path = details.path;
  }

  /** Stable lowercase code for machine-readable output (`--json`, daemon API). */
  get code(): string {
    return this.kind.replace(/[A-Z]/g, (c, i: number) => (i ? '-' : '') + c.toLowerCase());
  }
}

export class NotFoundError extends StrataError {
  constructor(message: string, details?: StrataErrorDetails) {
    super('NotFound', message, details);
  }
}
export class AlreadyExistsError extends StrataError {
  constructor(message: string, details?: StrataErrorDetails) {
    super('AlreadyExists', message, details);
  }
}
export class FailedPreconditionError extends StrataError {
  constructor(message: string, details?: StrataErrorDetails) {
    super('FailedPrecondition', message, details);
  }
}
export class InvalidArgumentError extends StrataError {
  constructor(message: string, details?: StrataErrorDetails) {
    super('InvalidArgument', message, details);
  }
}
export class UnavailableError extends StrataError {
  constructor(message: string, details?: StrataErrorDetails) {
    super('Unavailable', message, details);
  }
}
export class DataLossError extends StrataError {
  constructor(message: string, details?: StrataErrorDetails) {
    super('DataLoss', message, details);
  }
}

export function isKind(err: unknown, kind: ErrorKind): err is StrataError {
  return err instanceof StrataError && err.kind === kind;
}

/** Node's errno errors carry `code`; this narrows to them. */
export function isErrno(err: unknown, code?: string): err is NodeJS.ErrnoException {
  return (
    typeof err === 'object' &&
    err !== null &&
    typeof (err as NodeJS.ErrnoException).code === 'string' &&
    (code === undefined || (err as NodeJS.ErrnoException).code === code)
  );
}
