// WWW-Authenticate challenges (RFC 7235): `Bearer realm="…",service="…",scope="…"`, `Basic
// realm="…"`, several per header possibly. Hostile input: bounded length, quoted strings with
// backslash escapes, unknown parameters kept, unknown schemes returned for the caller to refuse.

export interface Challenge {
  /** Lower case: "bearer", "basic". */
  scheme: string;
  params: Record<string, string>;
}

const MAX_HEADER = 16 * 1024;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;

export function parseWwwAuthenticate(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const all = Array.isArray(header) ? header.join(', ') : header;
  const text = all.length > MAX_HEADER ? all.slice(0, MAX_HEADER) : all;
  const out: Challenge[] = [];
  let i = 0;
  let current: Challenge | undefined;
  const skip = () => {
    while (i < text.length && /[\s,]/.test(text[i])) i++;
  };
  while (true) {
    skip();
    if (i >= text.length) break;
    const m = TOKEN.exec(text.slice(i));
    if (!m) {
      i++; // garbage: step over it
      continue;
    }
    const word = m[0];
    let j = i + word.length;
    while (j < text.length && text[j] === ' ') j++;
    if (text[j] === '=' && current) {
      // a parameter of the current challenge
      j++;
      while (j < text.length && text[j] === ' ') j++;
      let value = '';
      if (text[j] === '"') {
        j++;
        while (j < text.length && text[j] !== '"') {
          if (text[j] === '\\' && j + 1 < text.length) j++;
          value += text[j++];
        }
        j++; // closing quote
      } else {
        const v = /^[^\s,]*/.exec(text.slice(j))![0];
        value = v;
        j += v.length;
      }
      current.params[word.toLowerCase()] = value;
      i = j;
    } else {
      current = { scheme: word.toLowerCase(), params: {} };
      out.push(current);
      i += word.length;
    }
  }
  return out;
}
