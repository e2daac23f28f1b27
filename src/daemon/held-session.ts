// What a daemon deposits with the fd holder for each container root it serves (fd-holder.ts), and
// what the next daemon reads back to serve it again: the tag (schemas/held-session.schema.json:
// container, bundle, image and index digests, the placeholders in their order) and a small
// journal of the passthrough backing ids the session holds open, one line per change
// (`+INO ID` made, `-INO ID` closed), next to the daemon socket. The journal is the only state that
// changes while a session runs, and only when a file is first opened or last closed; node ids
// and file handles need none (docs/architecture.md#sessions-outlive-the-daemon). It stays bounded:
// a daemon that adopts a session rewrites it to the ids left open (atomically: a rename), and so
// does the serving daemon once it holds more than COMPACT_FACTOR lines per open id (and at least
// COMPACT_MIN lines). A session's end removes it.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';

import { isErrno } from '../errors.js';
import { writeFileAtomicSync } from '../store/atomic.js';
import type { HeldSession } from '../schema/generated/held-session.js';
import { parseAndValidate } from '../schema/validate.js';

export type { HeldSession };

export function encodeHeldSession(s: HeldSession): string {
  return JSON.stringify(s);
}

export function decodeHeldSession(tag: string, name: string): HeldSession {
  return parseAndValidate<HeldSession>('held-session', tag, `held session ${name}`);
}

/** Where the backing journals of a daemon's sessions live. */
export function journalDir(daemonSocket: string): string {
  return `${daemonSocket}.sessions`;
}

/** A journal larger than this is not read (a session holds at most one id per image file). */
const MAX_JOURNAL = 16 * 1024 * 1024;

/** A journal is rewritten once it has this many lines per open id... */
export const COMPACT_FACTOR = 4;
/** ...and at least this many. */
export const COMPACT_MIN = 4096;

export class BackingJournal {
  private fd: number;
  readonly path: string;
  /** The ids open now, ino -> id (what a compaction writes). */
  private readonly live = new Map<number, number>();
  /** Lines in the file (about: a torn one counts as none). */
  private lines = 0;

  /**
   * Opens (creating) the journal of session `name`; `fresh` empties one a dead session left,
   * else (adopt) it is rewritten to the ids it leaves open.
   */
  constructor(dir: string, name: string, fresh: boolean) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, `${name}.backing`);
    if (!fresh) {
      for (const [ino, id] of BackingJournal.replay(dir, name)) this.live.set(ino, id);
      this.rewrite();
    }
    const flags = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND | (fresh ? fsc.O_TRUNC : 0);
    this.fd = openSync(this.path, flags, 0o600);
  }

  /** The ids open now, ino -> id: after an adopting open, what the earlier daemons left open. */
  openIds(): Map<number, number> {
    return new Map(this.live);
  }

  /** For ServeImageOptions.onBacking. A failed write only costs the next daemon this id. */
  readonly record = (ino: number, id: number, open: boolean): void => {
    if (this.fd < 0) return;
    if (open) this.live.set(ino, id);
    else if (this.live.get(ino) === id) this.live.delete(ino);
    try {
      writeSync(this.fd, `${open ? '+' : '-'}${ino} ${id}\n`);
      this.lines++;
      if (this.lines >= COMPACT_MIN && this.lines > COMPACT_FACTOR * this.live.size) this.compact();
    } catch {
      // disk full or the like: the session itself is unaffected
    }
  };

  /** Lines in the journal file now (tests). */
  get size(): number {
    return this.lines;
  }

  /** Rewrites the journal to the ids open now; later lines go to the new file. */
  compact(): void {
    if (this.fd < 0) return;
    this.rewrite();
    const old = this.fd;
    this.fd = openSync(this.path, fsc.O_WRONLY | fsc.O_APPEND, 0o600);
    closeSync(old);
  }

  /** The file replaced (a rename: a daemon killed meanwhile leaves the old one or the new one,
   * each whole) by one line per open id. Not durable: a journal means nothing after a reboot. */
  private rewrite(): void {
    const text = [...this.live].map(([ino, id]) => `+${ino} ${id}\n`).join('');
    writeFileAtomicSync(this.path, text, { mode: 0o600, durable: false });
    this.lines = this.live.size;
  }

  /** The ids left open, ino -> id. Malformed lines are skipped. */
  static replay(dir: string, name: string): Map<number, number> {
    const live = new Map<number, number>();
    let text: string;
    try {
      const buf = readFileSync(join(dir, `${name}.backing`));
      if (buf.length > MAX_JOURNAL) return live;
      text = buf.toString('latin1');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return live;
      throw err;
    }
    for (const line of text.split('\n')) {
      const m = /^([+-])([0-9]{1,15}) ([0-9]{1,10})$/.exec(line);
      if (!m) continue;
      const ino = Number(m[2]);
      const id = Number(m[3]);
      if (m[1] === '+') live.set(ino, id);
      else if (live.get(ino) === id) live.delete(ino);
    }
    return live;
  }

  /** Removes the journal of session `name`, opened or not. */
  static discard(dir: string, name: string): void {
    rmSync(join(dir, `${name}.backing`), { force: true });
  }

  /** Closes and removes the journal (the session is over). */
  remove(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    rmSync(this.path, { force: true });
  }

  /** Closes the journal and keeps it (the session goes on under another daemon). */
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
