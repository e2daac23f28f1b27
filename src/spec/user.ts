// Resolving an image's User ("name", "uid", "name:group", "uid:gid") through the image's own
// /etc/passwd and /etc/group, with the semantics of runc's libcontainer/user.GetExecUser (which
// umoci, docker and podman all use): numeric ids need no entry, names must exist, supplementary
// groups come from /etc/group membership only when no group was given explicitly.
import { InvalidArgumentError } from '../errors.js';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  /** From /etc/passwd; undefined for a numeric uid the image does not list. */
  home?: string;
  name?: string;
}

/** Reads a file of the image by absolute path, or undefined when it does not exist. */
export type ImageFileLookup = (path: string) => Buffer | undefined;

const MAX_ID = 4294967295;

function parseId(s: string): number | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

function lines(text: string): string[][] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(':'));
}

/** Malformed lines are skipped, as libc and runc do. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const f of lines(text)) {
    const uid = parseId(f[2] ?? '');
    const gid = parseId(f[3] ?? '');
    if (f.length < 4 || !f[0] || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] ?? '' });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const f of lines(text)) {
    const gid = parseId(f[2] ?? '');
    if (f.length < 3 || !f[0] || gid === undefined) continue;
    const members = (f[3] ?? '')
      .split(',')
      .map((m) => m.trim())
      .filter((m) => m !== '');
    out.push({ name: f[0], gid, members });
  }
  return out;
}

/**
 * Resolve `spec` (the image's User or --user; empty means root) inside the image. A user or
 * group NAME missing from the image's files is an InvalidArgumentError naming the file.
 */
export function resolveUser(spec: string, lookup: ImageFileLookup): ResolvedUser {
  const [userPart, groupPart, ...rest] = spec.split(':');
  if (rest.length > 0 || (groupPart !== undefined && groupPart === '')) {
    throw new InvalidArgumentError(`user "${spec}" is not USER, UID, USER:GROUP or UID:GID`, { op: 'user' });
  }
  const passwdText = lookup('/etc/passwd')?.toString('utf8');
  const passwd = passwdText === undefined ? [] : parsePasswd(passwdText);
  const userName = userPart === '' ? 'root' : userPart;

  let entry: PasswdEntry | undefined;
  const uid = parseId(userName);
  if (uid !== undefined) {
    entry = passwd.find((p) => p.uid === uid);
  } else {
    entry = passwd.find((p) => p.name === userName);
    // runc treats root as 0 even without /etc/passwd; so does every image tool.
    if (!entry && userName !== 'root') {
      const why =
        passwdText === undefined ? 'the image has no /etc/passwd' : "it is not in the image's /etc/passwd";
      throw new InvalidArgumentError(`user "${userName}" not found: ${why}`, {
        op: 'user',
        path: '/etc/passwd',
      });
    }
  }
  const resolved: ResolvedUser = {
    uid: uid ?? entry?.uid ?? 0,
    gid: entry?.gid ?? 0,
    additionalGids: [],
    home: entry?.home || undefined,
    name: entry?.name,
  };

  const groupText = lookup('/etc/group')?.toString('utf8');
  const groups = groupText === undefined ? [] : parseGroup(groupText);
  if (groupPart !== undefined) {
    const gid = parseId(groupPart);
    if (gid !== undefined) resolved.gid = gid;
    else {
      const g = groups.find((x) => x.name === groupPart);
      if (!g) {
        const why =
          groupText === undefined ? 'the image has no /etc/group' : "it is not in the image's /etc/group";
        throw new InvalidArgumentError(`group "${groupPart}" not found: ${why}`, {
          op: 'user',
          path: '/etc/group',
        });
      }
      resolved.gid = g.gid;
    }
  } else if (resolved.name !== undefined) {
    const name = resolved.name;
    for (const g of groups) {
      if (g.members.includes(name) && !resolved.additionalGids.includes(g.gid))
        resolved.additionalGids.push(g.gid);
    }
  }
  return resolved;
}
