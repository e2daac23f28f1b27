// The part of TOML that registries.conf uses: `key = value` with strings (basic and literal),
// booleans, integers and (multi-line) arrays of them; `[table]` and `[[array.of.tables]]`
// (`[[registry.mirror]]` appends to the last `[[registry]]`); comments. Anything else is an
// InvalidArgumentError naming the file and line: a half-read registries.conf must not silently
// drop a `blocked = true`.
import { InvalidArgumentError } from '../errors.js';

export type TomlValue = string | boolean | number | TomlValue[] | TomlTable | TomlTable[];
export interface TomlTable {
  [key: string]: TomlValue;
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

export function parseToml(text: string, file: string): TomlTable {
  const root: TomlTable = {};
  let table: TomlTable = root;
  const lines = text.split('\n');
  let n = 0;
  const fail = (why: string) =>
    new InvalidArgumentError(`${file}:${n}: ${why}`, { op: 'registries-conf', path: file });

  const keyPath = (spec: string): string[] => {
    const keys = spec.split('.').map((k) => k.trim().replace(/^"(.*)"$/, '$1'));
    if (keys.some((k) => k === '')) throw fail(`bad table name [${spec}]`);
    return keys;
  };
  const descend = (keys: string[], arrayLast: boolean): TomlTable => {
    let t = root;
    keys.forEach((k, i) => {
      const last = i === keys.length - 1;
      let v = t[k];
      if (last && arrayLast) {
        if (v === undefined) v = t[k] = [];
        if (!Array.isArray(v)) throw fail(`${k} is not an array of tables`);
        const fresh: TomlTable = {};
        (v as TomlTable[]).push(fresh);
        t = fresh;
        return;
      }
      if (v === undefined) v = t[k] = {};
      if (Array.isArray(v)) {
        const arr = v as TomlValue[];
        const lastEntry = arr[arr.length - 1];
        if (typeof lastEntry !== 'object' || lastEntry === null || Array.isArray(lastEntry))
          throw fail(`${k} is not a table`);
        t = lastEntry;
      } else if (typeof v === 'object') t = v;
      else throw fail(`${k} is not a table`);
    });
    return t;
  };

  // Values are read from a cursor over the rest of the file (arrays may span lines).
  let src = '';
  let pos = 0;
  const ws = () => {
    for (;;) {
      while (pos < src.length && /[ \t\r\n]/.test(src[pos])) pos++;
      if (src[pos] === '#') {
        while (pos < src.length && src[pos] !== '\n') pos++;
      } else return;
    }
  };
  const value = (): TomlValue => {
    ws();
    const c = src[pos];
    if (c === '"') {
      if (src.startsWith('"""', pos)) throw fail('multi-line strings are not supported');
      pos++;
      let s = '';
      while (pos < src.length && src[pos] !== '"') {
        if (src[pos] === '\n') throw fail('unterminated string');
        if (src[pos] === '\\') {
          const e = src[++pos];
          const map: Record<string, string> = {
            n: '\n',
            t: '\t',
            r: '\r',
            '"': '"',
            '\\': '\\',
            b: '\b',
            f: '\f',
          };
          if (e in map) s += map[e];
          else if (e === 'u' || e === 'U') {
            const len = e === 'u' ? 4 : 8;
            const hex = src.slice(pos + 1, pos + 1 + len);
            if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== len) throw fail('bad unicode escape');
            s += String.fromCodePoint(parseInt(hex, 16));
            pos += len;
          } else throw fail(`bad escape \\${e}`);
          pos++;
        } else s += src[pos++];
      }
      if (src[pos] !== '"') throw fail('unterminated string');
      pos++;
      return s;
    }
    if (c === "'") {
      const end = src.indexOf("'", pos + 1);
      const nl = src.indexOf('\n', pos + 1);
      if (end < 0 || (nl >= 0 && nl < end)) throw fail('unterminated string');
      const s = src.slice(pos + 1, end);
      pos = end + 1;
      return s;
    }
    if (c === '[') {
      pos++;
      const arr: TomlValue[] = [];
      for (;;) {
        ws();
        if (src[pos] === ']') {
          pos++;
          return arr;
        }
        arr.push(value());
        ws();
        if (src[pos] === ',') pos++;
        else if (src[pos] !== ']') throw fail('expected , or ] in array');
      }
    }
    const m = /^(true|false|[+-]?[0-9][0-9_]*)(?=[\s,\]#]|$)/.exec(src.slice(pos, pos + 64));
    if (!m) throw fail(`unsupported value ${JSON.stringify(src.slice(pos, pos + 20))}`);
    pos += m[0].length;
    if (m[1] === 'true') return true;
    if (m[1] === 'false') return false;
    return Number(m[1].replace(/_/g, ''));
  };

  // Offsets of line starts, so that a value spanning lines advances the line counter.
  let offset = 0;
  const starts = lines.map((l) => {
    const s = offset;
    offset += l.length + 1;
    return s;
  });
  src = text;
  let i = 0;
  while (i < lines.length) {
    n = i + 1;
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) {
      i++;
      continue;
    }
    let m: RegExpExecArray | null;
    if ((m = /^\[\[([^\]]+)\]\]\s*(#.*)?$/.exec(line))) {
      table = descend(keyPath(m[1].trim()), true);
      i++;
      continue;
    }
    if ((m = /^\[([^\]]+)\]\s*(#.*)?$/.exec(line))) {
      table = descend(keyPath(m[1].trim()), false);
      i++;
      continue;
    }
    if ((m = /^("[^"]*"|[A-Za-z0-9_-]+)\s*=/.exec(line))) {
      const key = m[1].replace(/^"(.*)"$/, '$1');
      if (!BARE_KEY.test(key) && !m[1].startsWith('"')) throw fail(`bad key ${key}`);
      if (key in table) throw fail(`duplicate key ${key}`);
      pos = starts[i] + lines[i].indexOf('=') + 1;
      table[key] = value();
      // the rest of the line must be empty or a comment
      while (pos < src.length && /[ \t\r]/.test(src[pos])) pos++;
      if (pos < src.length && src[pos] !== '\n' && src[pos] !== '#')
        throw fail('trailing characters after value');
      // move to the line holding pos
      while (i + 1 < lines.length && starts[i + 1] <= pos) i++;
      i++;
      continue;
    }
    throw fail(`cannot parse ${JSON.stringify(line.slice(0, 40))}`);
  }
  return root;
}
