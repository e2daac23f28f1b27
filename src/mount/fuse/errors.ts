// The one error a filesystem throws to answer a request with an errno. Anything else thrown by a
// handler is a bug or an I/O failure and becomes EIO.

export class FuseError extends Error {
  readonly errno: number;

  constructor(errno: number, message = `errno ${errno}`) {
    super(message);
    this.name = 'FuseError';
    this.errno = errno;
  }
}
