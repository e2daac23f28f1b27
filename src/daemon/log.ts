// The daemon's log: one line per event, appended to a file a user can find (see paths.ts), and
// mirrored to stderr when someone is watching it (a terminal, or systemd's journal).
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type LogLevel = 'info' | 'warn' | 'error';

export interface Logger {
  readonly file: string;
  log(level: LogLevel, message: string): void;
}

export function openLog(
  file: string,
  mirror = process.stderr.isTTY || process.env.JOURNAL_STREAM !== undefined,
): Logger {
  mkdirSync(dirname(file), { recursive: true, mode: 0o750 });
  // Fail now, at startup, if the file cannot be written: later failures are only reported.
  appendFileSync(file, '', { mode: 0o640 });
  return {
    file,
    log(level, message) {
      const line = `${new Date().toISOString()} ${level} ${message}\n`;
      try {
        appendFileSync(file, line);
      } catch {
        // A full or vanished log must not take the containers' filesystems down with it.
      }
      if (mirror) process.stderr.write(line);
    },
  };
}
