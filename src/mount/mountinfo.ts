// /proc/self/mountinfo, parsed (proc(5)): which mount sits at a path, and what it is. Pure
// parsing plus one lookup that never stats the mount point itself (a dead FUSE mount answers
// ENOTCONN to that).
import { readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

export interface MountInfo {
  id: number;
  parentId: number;
  mountPoint: string;
  options: string;
  fsType: string;
  source: string;
}

/** Octal escapes (\040 for a space, \012, \134) as the kernel writes them. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountinfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 3) continue;
    out.push({
      id: Number(fields[0]),
      parentId: Number(fields[1]),
      mountPoint: unescape(fields[4]),
      options: fields[5],
      fsType: fields[sep + 1],
      source: unescape(fields[sep + 2]),
    });
  }
  return out;
}

export function readMountinfo(): MountInfo[] {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}

/** The top mount whose mount point is `dir` (absolute or relative to cwd), if any. The parent
 * directory is canonicalized, never `dir` itself. */
export function mountAt(dir: string, mounts: MountInfo[] = readMountinfo()): MountInfo | undefined {
  const abs = resolve(dir);
  const candidates = new Set([abs]);
  try {
    candidates.add(join(realpathSync(dirname(abs)), basename(abs)));
  } catch {
    // the parent is gone: only the literal path can match
  }
  let found: MountInfo | undefined;
  for (const m of mounts) if (candidates.has(m.mountPoint)) found = m;
  return found;
}
