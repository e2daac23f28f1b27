// gRPC status codes as ttrpc carries them (google.rpc.Status in every Response), and the error a
// handler throws to choose one. Which core error becomes which code is the caller's mapping
// (src/shim/errors.ts for the Task service): this module only carries codes.

export const Code = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
} as const;
export type CodeValue = (typeof Code)[keyof typeof Code];

export function codeName(code: number): string {
  return Object.entries(Code).find(([, v]) => v === code)?.[0] ?? `code ${code}`;
}

/** A ttrpc call's failure, with its status code: thrown by handlers, and by the client on a
 * non-OK response. */
export class TtrpcError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.name = 'TtrpcError';
    this.code = code;
  }
}
