// Content objects: hashed while written to a temp file in this import's ingest dir, checked for
// size, made read-only, then linked into objects/ without replacing anything (EEXIST = already
// present = success). Two ways to make them durable:
//
//   fsync  each object: fsync the file, link, fsync objects/xx/. Simple; one or two disk
//          flushes per file.
//   batch  write every temp file, then at commit() one syncfs (all data durable), all the
//          links, and one more syncfs (all names durable). A name under objects/ therefore only
//          ever appears for data already on disk, and nothing that references these objects
//          (index, record, ref) is written before commit() returns.
//
// An object that already exists with the wrong size is corrupt: the verified new copy is renamed
// over it. Same-size corruption (bit rot) is not detected here (that would mean re-reading every
// object on every import); `strata fsck --repair` re-hashes and deletes it, after which the next
// import rewrites it.
import { createHash } from 'node:crypto';
import { mkdirSync, promises as fs, renameSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { createExclusive, fsyncDir, linkNoReplace, linkNoReplaceSync, tempName } from './atomic.js';
import { DataLossError } from '../errors.js';
import { objectPath, objectsDir } from './layout.js';
import { syncFilesystem } from './native.js';
import { native, nativeBuilt } from '../native-addon.js';
import type { Ingester } from './types.js';

export type SyncMode = 'fsync' | 'batch';

/** Contents up to this size are hashed in memory first, so an existing object costs no write. */
const BUFFER_MAX = 1 << 20;

export interface WriterStats {
  written: number;
  existing: number;
  bytesWritten: number;
}

interface Pending {
  temp: string;
  dest: string;
  replace: boolean;
}

export class ObjectWriter implements Ingester {
  readonly stats: WriterStats = { written: 0, existing: 0, bytesWritten: 0 };
  private readonly pending = new Map<string, Pending>();
  /** Temp names are this writer's random prefix plus a counter: no random bytes per object. */
  private readonly tempPrefix = tempName('', 'obj');
  private tempCount = 0;
  private readonly objectsDir: string;

  constructor(
    private readonly root: string,
    private readonly tmpDir: string,
    private readonly mode: SyncMode = 'batch',
  ) {
    this.objectsDir = objectsDir(root);
  }

  async write(content: Readable, size: number): Promise<{ digest: string; size: number }> {
    if (size <= BUFFER_MAX) {
      const chunks: Buffer[] = [];
      for await (const chunk of content) chunks.push(chunk as Buffer);
      const data = Buffer.concat(chunks);
      checkSize(data.length, size);
      const digest = createHash('sha256').update(data).digest('hex');
      const state = await this.existing(digest, size);
      if (state !== 'ok') await this.place(digest, size, state === 'corrupt', (fh) => fh.writeFile(data));
      return { digest, size };
    }
    const temp = this.nextTemp();
    const hash = createHash('sha256');
    let seen = 0;
    const fh = await createExclusive(temp, 0o444);
    try {
      for await (const chunk of content) {
        hash.update(chunk as Buffer);
        seen += (chunk as Buffer).length;
        await fh.write(chunk as Buffer);
      }
      checkSize(seen, size);
      if (this.mode === 'fsync') await fh.sync();
    } catch (err) {
      await fh.close();
      await fs.rm(temp, { force: true });
      throw err;
    }
    await fh.close();
    const digest = hash.digest('hex');
    const state = await this.existing(digest, size);
    if (state === 'ok') await fs.rm(temp, { force: true });
    else await this.move(digest, temp, size, state === 'corrupt');
    return { digest, size };
  }

  /**
   * Content already in memory, in pieces (views into the layer's decompressed chunks: no copy).
   * With the addon, one trip through the thread pool hashes it, looks for the object and writes
   * the temp file (native/src/objects.c); the JS thread only parses the tar.
   */
  async writeChunks(chunks: Buffer[], size: number): Promise<{ digest: string; size: number }> {
    let seen = 0;
    for (const c of chunks) seen += c.length;
    checkSize(seen, size);
    if (nativeBuilt) return this.writeNative(chunks, size);
    const hash = createHash('sha256');
    for (const c of chunks) hash.update(c);
    const digest = hash.digest('hex');
    const state = await this.existing(digest, size);
    if (state !== 'ok')
      await this.place(digest, size, state === 'corrupt', async (fh) => {
        await fh.writev(chunks);
      });
    return { digest, size };
  }

  private async writeNative(chunks: Buffer[], size: number): Promise<{ digest: string; size: number }> {
    const temp = this.nextTemp();
    const [digest, state] = await native.objectWrite(chunks, this.objectsDir, temp, 0o444);
    if (state === 0) {
      this.stats.existing++;
      return { digest, size };
    }
    if (this.mode === 'fsync') {
      const fh = await fs.open(temp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    await this.move(digest, temp, size, state === 2);
    return { digest, size };
  }

  private nextTemp(): string {
    return join(this.tmpDir, `${this.tempPrefix}-${(this.tempCount++).toString(36)}`);
  }

  /** 'ok' when present (or pending) with the right size, 'corrupt' when present with another. */
  private async existing(digest: string, size: number): Promise<'ok' | 'absent' | 'corrupt'> {
    if (this.pending.has(digest)) return 'ok';
    // Synchronous: a lookup in a cached directory costs less than a trip through the thread pool
    // (and a missing object is the common case, which the promise API turns into an Error).
    const st = statSync(objectPath(this.root, digest), { throwIfNoEntry: false });
    if (st === undefined) return 'absent';
    if (st.size === size) {
      this.stats.existing++;
      return 'ok';
    }
    return 'corrupt';
  }

  private async place(
    digest: string,
    size: number,
    replace: boolean,
    fill: (fh: fs.FileHandle) => Promise<void>,
  ): Promise<void> {
    const temp = this.nextTemp();
    const fh = await createExclusive(temp, 0o444);
    try {
      await fill(fh);
      if (this.mode === 'fsync') await fh.sync();
    } catch (err) {
      await fh.close();
      await fs.rm(temp, { force: true });
      throw err;
    }
    await fh.close();
    await this.move(digest, temp, size, replace);
  }

  private async move(digest: string, temp: string, size: number, replace: boolean): Promise<void> {
    if (this.pending.has(digest)) {
      // The layer applier may write concurrently: the same content can arrive twice at once.
      await fs.rm(temp, { force: true });
      return;
    }
    this.stats.written++;
    this.stats.bytesWritten += size;
    const dest = objectPath(this.root, digest);
    if (this.mode === 'batch') {
      this.pending.set(digest, { temp, dest, replace });
      return;
    }
    await moveIntoPlace(temp, dest, replace);
    await fsyncDir(dirname(dest));
  }

  async commit(): Promise<void> {
    if (this.pending.size === 0) return;
    await syncFilesystem(this.root);
    // Synchronous links: nothing else runs during a commit, and a link is a few microseconds in
    // the kernel against a trip through the thread pool and the event loop for each call.
    for (const [digest, p] of this.pending) {
      moveIntoPlaceSync(p.temp, p.dest, p.replace);
      this.pending.delete(digest);
    }
    await syncFilesystem(this.root);
  }

  async abort(): Promise<void> {
    for (const p of this.pending.values()) await fs.rm(p.temp, { force: true });
    this.pending.clear();
  }
}

async function moveIntoPlace(temp: string, dest: string, replace: boolean): Promise<void> {
  if (!replace) {
    await linkNoReplace(temp, dest);
    return;
  }
  await fs.mkdir(dirname(dest), { recursive: true });
  await fs.rename(temp, dest);
}

function moveIntoPlaceSync(temp: string, dest: string, replace: boolean): void {
  if (replace) {
    mkdirSync(dirname(dest), { recursive: true });
    renameSync(temp, dest);
    return;
  }
  linkNoReplaceSync(temp, dest);
  unlinkSync(temp);
}

function checkSize(seen: number, size: number): void {
  if (seen !== size) {
    throw new DataLossError(`file content is ${seen} bytes, its header says ${size}`, { op: 'write-object' });
  }
}
