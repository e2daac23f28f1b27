// PAX record helpers of the layer applier. tar-stream (and the push reader, for the same answer)
// decodes PAX records as UTF-8 strings, which mangles binary values such as security.capability
// xattrs; parsePax reads an entry's own record byte for byte (src/store/layer/tar-reader.ts hands
// it over).

/** "LEN key=value\n" records; LEN counts bytes, so values may hold any byte. */
export function parsePax(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let at = 0;
  while (at < buf.length) {
    const sp = buf.indexOf(0x20, at);
    if (sp < 0) break;
    const len = parseInt(buf.toString('latin1', at, sp), 10);
    if (!(len > 0) || at + len > buf.length) break;
    const rec = buf.subarray(sp + 1, at + len - 1); // without the trailing '\n'
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(rec.toString('utf8', 0, eq), Buffer.from(rec.subarray(eq + 1)));
    at += len;
  }
  return out;
}

/** PAX mtime "SECONDS[.FRACTION]" to seconds and nanoseconds. */
export function parsePaxTime(value: string): { sec: number; nsec: number } | undefined {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(value.trim());
  if (!m) return undefined;
  let sec = Number(m[2]);
  let nsec = Number(((m[3] ?? '') + '000000000').slice(0, 9));
  if (m[1] === '-') {
    sec = -sec;
    if (nsec) {
      sec -= 1;
      nsec = 1e9 - nsec;
    }
  }
  return { sec, nsec };
}
