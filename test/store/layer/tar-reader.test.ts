// The layer applier's push tar reader (src/store/layer/tar-reader.ts) reads what tar-stream's
// extract reads: the same headers and data for GNU tar, POSIX (pax) tar and tar-stream's own
// output, however the bytes are split into chunks, and an error where tar-stream has one.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, linkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TarReader, type TarHeader } from '../../../src/store/layer/tar-reader.js';
import { makeTar } from './helpers.js';

interface Seen {
  name: string;
  type: string | null;
  size: number;
  mode: number | null;
  uid: number | null;
  mtime: number;
  linkname: string | null;
  pax: Record<string, string> | null;
  data: string;
}

function pick(h: TarHeader | tar.Header, data: Buffer): Seen {
  return {
    name: h.name,
    type: h.type ?? null,
    size: h.size ?? 0,
    mode: h.mode ?? null,
    uid: h.uid ?? null,
    mtime: h.mtime?.getTime() ?? 0,
    linkname: h.linkname ?? null,
    pax: (h as { pax?: Record<string, string> | null }).pax ?? null,
    data: data.toString('hex'),
  };
}

async function withTarStream(buf: Buffer): Promise<Seen[]> {
  const out: Seen[] = [];
  const extract = tar.extract();
  Readable.from([buf]).pipe(extract as unknown as NodeJS.WritableStream);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    out.push(pick(entry.header, Buffer.concat(chunks)));
  }
  return out;
}

function withReader(buf: Buffer, chunk: number): Seen[] {
  const out: Seen[] = [];
  const reader = new TarReader();
  let header: TarHeader | undefined;
  let data: Buffer[] = [];
  const visitor = {
    header(h: TarHeader) {
      header = h;
      data = [];
    },
    data(c: Buffer) {
      data.push(Buffer.from(c));
    },
    end() {
      out.push(pick(header!, Buffer.concat(data)));
    },
  };
  for (let at = 0; at < buf.length; at += chunk) reader.push(buf.subarray(at, at + chunk), visitor);
  reader.end();
  return out;
}

const CHUNKS = [1, 7, 511, 512, 513, 4096, 1 << 20];

async function sameAsTarStream(buf: Buffer, what: string): Promise<void> {
  const want = await withTarStream(buf);
  assert.ok(want.length > 0, `${what}: tar-stream read entries`);
  for (const size of CHUNKS) assert.equal(withReader(buf, size), want, `${what}, chunks of ${size}`);
}

test('GNU and POSIX tar from GNU tar: long names and links, hard links, symlinks, dirs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-tar-reader-'));
  try {
    const root = join(dir, 'root');
    const deep = join(root, 'd'.repeat(120), 'e'.repeat(120));
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(deep, 'f'.repeat(200)), 'long name\n');
    writeFileSync(join(root, 'odd'), Buffer.alloc(1000, 7));
    writeFileSync(join(root, 'block'), Buffer.alloc(512, 1));
    writeFileSync(join(root, 'empty'), '');
    linkSync(join(root, 'odd'), join(root, 'hard'));
    symlinkSync('t'.repeat(150), join(root, 'longlink'));
    symlinkSync('odd', join(root, 'short'));
    for (const format of ['gnu', 'posix', 'ustar']) {
      const args = ['-C', root, '--sort=name', `--format=${format}`, '--mtime=@1700000000', '-cf', '-', '.'];
      if (format === 'ustar') args.splice(4, 0, '--exclude=./d*', '--exclude=./longlink');
      await sameAsTarStream(execFileSync('tar', args, { maxBuffer: 1 << 26 }), `tar --format=${format}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("tar-stream's own output: pax records (xattrs, mtime), a global header, devices", async () => {
  const built = await makeTar([
    { name: 'dir', type: 'directory' },
    { name: 'dir/x', body: 'hello', pax: { 'SCHILY.xattr.user.a': 'v', mtime: '1700000000.5' } },
    { name: 'dev', type: 'character-device', devmajor: 1, devminor: 3 },
    { name: 'p'.repeat(300), body: Buffer.alloc(3000, 9) },
  ]);
  await sameAsTarStream(built, 'tar-stream pack');
  // A global header ('g') merged into the next per-entry one, as tar-stream does.
  const global = tar.pack();
  const parts: Buffer[] = [];
  const done = (async () => {
    for await (const c of global) parts.push(c as Buffer);
  })();
  global.entry({
    name: 'g',
    type: 'pax-global-header' as tar.Header['type'],
    pax: { comment: 'all' },
  } as tar.Header);
  global.entry({ name: 'a', pax: { 'SCHILY.xattr.user.b': 'w' } }, 'A');
  global.finalize();
  await done;
  await sameAsTarStream(Buffer.concat(parts), 'pax global header');
});

test('errors where tar-stream has them: bad checksum, unknown format, truncation', async () => {
  const good = await makeTar([{ name: 'f', body: 'x'.repeat(700) }]);
  const badSum = Buffer.from(good);
  badSum[0] ^= 1;
  assert.throws(() => withReader(badSum, 4096), /Invalid tar header/);
  const unknown = Buffer.from(good);
  unknown.write('nope!\0', 257, 'latin1');
  unknown.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += unknown[i];
  unknown.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1'); // a valid checksum
  assert.throws(() => withReader(unknown, 4096), /unknown format/);
  assert.throws(() => withReader(badSum, 7), /Maybe the tar is corrupted/);
  for (const cut of [100, 512, 900, 1024 + 1]) {
    assert.throws(() => withReader(good.subarray(0, cut), 4096), /Unexpected end of data/, `cut at ${cut}`);
  }
  // Ends cleanly without the two zero blocks, and after them.
  assert.is(withReader(good.subarray(0, 1536), 100).length, 1);
  assert.is(withReader(good, 100).length, 1);
});

test.run();
