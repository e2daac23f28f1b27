// Where a daemon keeps its sessions' fds so that they outlive it (docs/architecture.md#sessions-
// outlive-the-daemon): the fd holder (fd-holder.ts) always, and under systemd also systemd's own
// file descriptor store (sd_notify(3) FDSTORE=1 with FDNAME; the unit sets FileDescriptorStoreMax).
// systemd's store survives anything in the unit's cgroup, the holder included, and systemd gives
// its fds to the daemon it restarts (sd_listen_fds_with_names(3): $LISTEN_PID, $LISTEN_FDS,
// $LISTEN_FDNAMES, fds from 3 on). The holder stays for `strata daemon --upgrade`, whose new daemon
// is not one systemd started. systemd keeps no tag with an fd: a session's tag goes to
// `<name>.tag` beside its backing journal (held-session.ts).
import { closeSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { isErrno } from '../errors.js';
import { native } from '../native-addon.js';
import { writeFileAtomicSync } from '../store/atomic.js';
import { FdHolderError, type FdHolder, type HeldFd } from './fd-holder.js';

/** What the container manager deposits sessions with. */
export interface SessionStore {
  put(name: string, tag: string, fd: number): void;
  drop(name: string): void;
  /** Copies of every fd held (ours to close). */
  take(): HeldFd[];
  close(): void;
}

/** systemd's fd store is in use: a notify socket, and systemd said it keeps fds ($FDSTORE, from
 * systemd 254) or the unit says so ($STRATA_FDSTORE=1, for older ones). */
export function systemdFdStoreWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  if (!env.NOTIFY_SOCKET) return false;
  return Number(env.FDSTORE ?? 0) > 0 || env.STRATA_FDSTORE === '1';
}

/** FDNAME: at most 255 printable ASCII characters, no ':' (the separator of $LISTEN_FDNAMES). */
const FDNAME = /^[\x21-\x39\x3b-\x7e]{1,255}$/;
const MAX_LISTEN_FDS = 4096;
const MAX_TAG = 60000;

export class SystemdFdStore {
  constructor(
    private readonly notifySocket: string,
    private readonly tagDir: string,
  ) {}

  private tagPath(name: string): string {
    return join(this.tagDir, `${name}.tag`);
  }

  put(name: string, tag: string, fd: number): void {
    if (!FDNAME.test(name)) throw new FdHolderError(`${JSON.stringify(name)} is not a valid FDNAME`);
    if (tag) writeFileAtomicSync(this.tagPath(name), tag, { mode: 0o600, durable: false });
    // A mount fd cannot be polled; a /dev/fuse fd can, and systemd drops it by itself once its
    // connection is gone (POLLERR).
    const poll = name.endsWith('.mnt') ? 'FDPOLL=0\n' : '';
    native.sendDatagram(this.notifySocket, Buffer.from(`FDSTORE=1\nFDNAME=${name}\n${poll}`), [fd]);
  }

  drop(name: string): void {
    if (!FDNAME.test(name)) return;
    native.sendDatagram(this.notifySocket, Buffer.from(`FDSTOREREMOVE=1\nFDNAME=${name}\n`));
    rmSync(this.tagPath(name), { force: true });
  }

  /**
   * The fds systemd passed to this process ($LISTEN_PID is ours), with their names and tags, as
   * close-on-exec copies (the originals are closed, the variables removed: nothing we start
   * inherits them). Each call after the first finds none.
   */
  listened(env: NodeJS.ProcessEnv = process.env): HeldFd[] {
    const n = Number(env.LISTEN_FDS);
    const mine = Number(env.LISTEN_PID) === process.pid;
    const names = (env.LISTEN_FDNAMES ?? '').split(':');
    delete env.LISTEN_FDS;
    delete env.LISTEN_PID;
    delete env.LISTEN_FDNAMES;
    if (!mine || !Number.isInteger(n) || n <= 0 || n > MAX_LISTEN_FDS) return [];
    const out: HeldFd[] = [];
    const [a, b] = native.socketpair();
    try {
      for (let i = 0; i < n; i++) {
        const fd = 3 + i;
        // A copy with close-on-exec: through a socket, received with MSG_CMSG_CLOEXEC.
        native.sendFds(a, Buffer.from('f'), [fd]);
        const got = native.recvFds(b, 1, 1).fds;
        closeSync(fd);
        const name = names[i] ?? '';
        if (got.length !== 1) continue;
        if (!FDNAME.test(name)) {
          closeSync(got[0]);
          continue;
        }
        out.push({ name, tag: this.readTag(name), fd: got[0] });
      }
    } finally {
      closeSync(a);
      closeSync(b);
    }
    return out;
  }

  private readTag(name: string): string {
    try {
      const buf = readFileSync(this.tagPath(name));
      return buf.length > MAX_TAG ? '' : buf.toString('utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return '';
      throw err;
    }
  }
}

/** The holder and, under systemd, systemd's store too: every put and drop goes to both; take()
 * is the holder's, plus (once) what systemd passed at start, one fd per name. */
export class MirroredStore implements SessionStore {
  private listened: HeldFd[] | undefined;

  constructor(
    private readonly holder: FdHolder | undefined,
    private readonly systemd: SystemdFdStore,
  ) {}

  put(name: string, tag: string, fd: number): void {
    this.systemd.put(name, tag, fd);
    this.holder?.put(name, tag, fd);
  }

  drop(name: string): void {
    this.systemd.drop(name);
    this.holder?.drop(name);
  }

  take(): HeldFd[] {
    this.listened ??= this.systemd.listened();
    const fromSystemd = this.listened;
    this.listened = [];
    const out = new Map(fromSystemd.map((h) => [h.name, h]));
    for (const h of this.holder?.take() ?? []) {
      const have = out.get(h.name);
      if (have) {
        // The same open file twice: keep one; systemd's copy has no tag when its file is gone.
        if (!have.tag && h.tag) have.tag = h.tag;
        closeSync(h.fd);
      } else out.set(h.name, h);
    }
    return [...out.values()];
  }

  close(): void {
    this.holder?.close();
  }
}
