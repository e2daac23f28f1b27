// The daemon's side of strata-fdholder (native/holder/strata-fdholder.c): the process that keeps
// every FUSE session's /dev/fuse fd while no daemon runs, so that containers outlive the daemon
// (docs/architecture.md#sessions-outlive-the-daemon). The daemon stays connected for its whole
// life (the holder exits only when it holds nothing and nobody is connected); every call is one
// blocking SOCK_SEQPACKET round trip of a few microseconds on an idle local peer.
import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';

import { isErrno, UnavailableError } from '../errors.js';
import { fdHolderExecutable } from '../executables.js';
import { native } from '../native-addon.js';

/** The holder's socket for a daemon socket. */
export function fdHolderSocket(daemonSocket: string): string {
  return `${daemonSocket}.fds`;
}

const NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
const MAX_TAG = 60000;
const MAX_MESSAGE = 1 + 128 + 1 + MAX_TAG;
/** At most this many fds are ever held (the holder's own bound). */
const MAX_HELD = 4096;

export interface HeldFd {
  name: string;
  tag: string;
  /** Ours: close it or hand it on. */
  fd: number;
}

export class FdHolderError extends UnavailableError {
  constructor(message: string) {
    super(message, { op: 'fd-holder' });
  }
}

export class FdHolder {
  private constructor(
    readonly socketPath: string,
    private fd: number,
  ) {}

  /**
   * Connects to the holder at `socketPath`, starting it first when none answers. `restartArgv`:
   * what the holder runs when this daemon dies while it holds fds (a new daemon).
   */
  static async connect(socketPath: string, restartArgv?: string[]): Promise<FdHolder> {
    const first = tryConnect(socketPath);
    if (first !== undefined) return new FdHolder(socketPath, first);
    const args = ['--socket', socketPath, ...(restartArgv ? ['--restart', ...restartArgv] : [])];
    // Not our child for long: it must outlive us. No NOTIFY_SOCKET: a daemon it restarts is not
    // the one systemd or a hook waits for.
    const env = { ...process.env };
    delete env.NOTIFY_SOCKET;
    const child = spawn(fdHolderExecutable(), args, { detached: true, stdio: 'ignore', env });
    child.unref();
    const until = Date.now() + 5000;
    for (;;) {
      await new Promise((r) => setTimeout(r, 2));
      const fd = tryConnect(socketPath);
      if (fd !== undefined) return new FdHolder(socketPath, fd);
      if (Date.now() > until)
        throw new FdHolderError(`the fd holder did not start listening on ${socketPath} within 5 s`);
    }
  }

  /** Holds a copy of `fd` under `name` (replacing what was held under it). */
  put(name: string, tag: string, fd: number): void {
    checkName(name);
    const body = Buffer.concat([Buffer.from(`P${name}\0`), Buffer.from(tag)]);
    if (body.length > MAX_MESSAGE) throw new FdHolderError(`tag of ${name} too long`);
    this.request(body, [fd]);
  }

  /** Closes the holder's copy held under `name`, if any. */
  drop(name: string): void {
    checkName(name);
    this.request(Buffer.from(`D${name}`), []);
  }

  /** Copies of every held fd (the holder keeps its own). */
  take(): HeldFd[] {
    native.sendFds(this.fd, Buffer.from('T'), []);
    const out: HeldFd[] = [];
    try {
      for (;;) {
        const { data, fds } = native.recvFds(this.fd, MAX_MESSAGE, 1);
        if (data.length === 0) throw new FdHolderError('the fd holder hung up');
        if (data[0] === 0x45 /* E */ && fds.length === 0) return out;
        const nul = data.indexOf(0);
        const name = nul > 1 ? data.subarray(1, nul).toString() : '';
        if (data[0] !== 0x46 /* F */ || fds.length !== 1 || !NAME.test(name) || out.length >= MAX_HELD) {
          for (const f of fds) closeSync(f);
          throw new FdHolderError(
            `unexpected answer from the fd holder: ${JSON.stringify(data.subarray(0, 80).toString())}`,
          );
        }
        out.push({ name, tag: data.subarray(nul + 1).toString(), fd: fds[0] });
      }
    } catch (err) {
      for (const h of out) closeSync(h.fd);
      throw err;
    }
  }

  /** Disconnects; what is held stays held. */
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private request(body: Buffer, fds: number[]): void {
    if (this.fd < 0) throw new FdHolderError('not connected to the fd holder');
    native.sendFds(this.fd, body, fds);
    const { data, fds: got } = native.recvFds(this.fd, 512, 1);
    for (const f of got) closeSync(f);
    if (data.length === 0) throw new FdHolderError('the fd holder hung up');
    if (data[0] !== 0x6f /* o */)
      throw new FdHolderError(`the fd holder refused: ${data.subarray(1).toString()}`);
  }
}

function checkName(name: string): void {
  if (!NAME.test(name)) throw new FdHolderError(`bad fd holder name ${JSON.stringify(name)}`);
}

function tryConnect(path: string): number | undefined {
  try {
    return native.unixConnectSeqpacket(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ECONNREFUSED')) return undefined;
    throw err;
  }
}
