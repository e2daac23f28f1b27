// What a daemon deposits with the fd holder for each container root it serves (fd-holder.ts), and
// what the next daemon reads back to serve it again: the tag (schemas/held-session.schema.json:
// container, bundle, image and index digests, the placeholders in their order) and a small
// journal of the passthrough backing ids the session holds open, one line per change
// (`+INO ID` made, `-INO ID` closed), next to the daemon socket. The journal is the only state that
// changes while a session runs, and only when a file is first opened or last closed; node ids
// and file handles need none (docs/architecture.md#sessions-outlive-the-daemon).
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';

import { isErrno } from '../errors.js';
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

export class BackingJournal {
  private fd: number;
  readonly path: string;

  /** Opens (creating) the journal of session `name`; `fresh` empties one a dead session left. */
  constructor(dir: string, name: string, fresh: boolean) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, `${name}.backing`);
    const flags = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND | (fresh ? fsc.O_TRUNC : 0);
    this.fd = openSync(this.path, flags, 0o600);
    // A daemon killed in the middle of a line left it unfinished: ours start on a fresh one.
    if (!fresh) this.record(0, 0, true, '\n');
  }

  /** For ServeImageOptions.onBacking. A failed write only costs the next daemon this id. */
  readonly record = (ino: number, id: number, open: boolean, raw?: string): void => {
    if (this.fd < 0) return;
    try {
      writeSync(this.fd, raw ?? `${open ? '+' : '-'}${ino} ${id}\n`);
    } catch {
      // disk full or the like: the session itself is unaffected
    }
  };

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
