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
// With STRATA_OBJECT_WORKERS=N (default 0: see workerCount), contents up to BUFFER_MAX (nearly
// every file of an image) are hashed and written by N worker threads (object-worker.ts) with
// synchronous calls, beside the main thread that parses the tar stream; the commit's links run
// there too.
//
// An object that already exists with the wrong size is corrupt: the verified new copy is renamed
// over it. Same-size corruption (bit rot) is not detected here (that would mean re-reading every
// object on every import); `strata fsck --repair` re-hashes and deletes it, after which the next
// import rewrites it.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { createExclusive, fsyncDir, linkNoReplace, tempName } from './atomic.js';
import { DataLossError, isErrno } from '../errors.js';
import { objectPath } from './layout.js';
import { syncFilesystem } from './native.js';
import type { Ingester } from './types.js';
import type { WorkerReply, WorkerRequest } from './object-worker.js';

export type SyncMode = 'fsync' | 'batch';

/** Contents up to this size are hashed in memory first, so an existing object costs no write. */
const BUFFER_MAX = 1 << 20;
/** Link + unlink pairs in flight at commit (the thread pool has 4 threads by default). */
const COMMIT_CONCURRENCY = 8;

/**
 * The first objects are written on the main thread: a worker costs ~30 ms to start (seconds
 * under tsx on a loaded machine), more than a small image's whole write.
 */
const WORKERS_AFTER = 128;

/**
 * Worker threads per writer: STRATA_OBJECT_WORKERS, else none. Off by default: on this 2-core
 * shared machine (load 11-25) a Debian pull took more CPU in all (3.9-4.8 s against 3.2-4.0 s)
 * and more time with 2 workers than without, and the main thread's share barely moved
 * (bench:pull prints both).
 */
function workerCount(): number {
  const env = process.env.STRATA_OBJECT_WORKERS;
  if (env !== undefined && /^\d+$/.test(env)) return Math.min(Number(env), 16);
  return 0;
}

/**
 * The worker from dist/ as it is; from the TypeScript sources (the tests run through tsx) a
 * worker does not inherit tsx's loader, so a small bootstrap registers it first.
 */
function startWorker(): Worker {
  const url = new URL(
    import.meta.url.endsWith('.ts') ? './object-worker.ts' : './object-worker.js',
    import.meta.url,
  );
  if (url.pathname.endsWith('.js')) return new Worker(url);
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  // check-layers: computed (the worker's own bootstrap, run in the worker: tsx, then this folder's worker)
  const code = `import(${tsx}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(code, { eval: true });
}

type Job = { resolve: (r: WorkerReply) => void; reject: (e: Error) => void; worker: Worker };
type Request = WorkerRequest extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

/** Worker threads started on first use, each job to the least busy one; unref'd, so they never
 * keep a process alive, and terminated by close(). */
class ObjectPool {
  private readonly workers: { worker: Worker; busy: number }[] = [];
  private readonly jobs = new Map<number, Job>();
  private nextId = 0;

  constructor(readonly size: number) {}

  run(req: Request): Promise<WorkerReply> {
    const slot = this.pick();
    const id = this.nextId++;
    slot.busy++;
    return new Promise<WorkerReply>((resolve, reject) => {
      this.jobs.set(id, { resolve, reject, worker: slot.worker });
      const msg = { ...req, id } as WorkerRequest;
      const data = msg.op === 'put' ? msg.data : undefined;
      // A buffer that owns its whole ArrayBuffer moves to the worker without a copy.
      const own = data && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
      slot.worker.postMessage(msg, own ? [data.buffer as ArrayBuffer] : []);
    }).finally(() => slot.busy--);
  }

  private pick(): { worker: Worker; busy: number } {
    let best = this.workers.find((w) => w.busy === 0);
    if (!best && this.workers.length < this.size) {
      const worker = startWorker();
      worker.unref();
      worker.on('message', (r: WorkerReply) => {
        const job = this.jobs.get(r.id);
        if (!job) return;
        this.jobs.delete(r.id);
        if ('error' in r) job.reject(Object.assign(new Error(r.error.message), { code: r.error.code }));
        else job.resolve(r);
      });
      const fail = (err: Error) => {
        for (const [id, job] of this.jobs) {
          if (job.worker !== worker) continue;
          this.jobs.delete(id);
          job.reject(err);
        }
        const i = this.workers.findIndex((w) => w.worker === worker);
        if (i >= 0) this.workers.splice(i, 1);
      };
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`object writer thread exited (${code})`)));
      best = { worker, busy: 0 };
      this.workers.push(best);
    }
    best ??= this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    return best;
  }

  async close(): Promise<void> {
    const all = this.workers.splice(0);
    await Promise.all(all.map((w) => w.worker.terminate()));
  }
}

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
  private readonly pool: ObjectPool | undefined;
  /** Contents seen by write(), to start workers only for an image with many files. */
  private count = 0;

  constructor(
    private readonly root: string,
    private readonly tmpDir: string,
    private readonly mode: SyncMode = 'batch',
    /** Worker threads (default workerCount()) and after how many objects they start. */
    private readonly threads: { workers?: number; after?: number } = {},
  ) {
    const n = threads.workers ?? workerCount();
    if (n > 0) this.pool = new ObjectPool(n);
  }

  async write(content: Readable, size: number): Promise<{ digest: string; size: number }> {
    if (size <= BUFFER_MAX) {
      const chunks: Buffer[] = [];
      for await (const chunk of content) chunks.push(chunk as Buffer);
      const data = Buffer.concat(chunks);
      checkSize(data.length, size);
      if (this.pool && this.count++ >= (this.threads.after ?? WORKERS_AFTER))
        return this.writeInWorker(this.pool, data, size);
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

  private async writeInWorker(
    pool: ObjectPool,
    data: Buffer,
    size: number,
  ): Promise<{ digest: string; size: number }> {
    const temp = this.nextTemp();
    const r = await pool.run({ op: 'put', data, size, temp, root: this.root, fsync: this.mode === 'fsync' });
    const { digest, state } = r as { digest: string; state: 'ok' | 'absent' | 'corrupt' };
    if (state === 'ok') this.stats.existing++;
    else await this.move(digest, temp, size, state === 'corrupt');
    return { digest, size };
  }

  private nextTemp(): string {
    return join(this.tmpDir, `${this.tempPrefix}-${(this.tempCount++).toString(36)}`);
  }

  /** 'ok' when present (or pending) with the right size, 'corrupt' when present with another. */
  private async existing(digest: string, size: number): Promise<'ok' | 'absent' | 'corrupt'> {
    if (this.pending.has(digest)) return 'ok';
    try {
      const st = await fs.stat(objectPath(this.root, digest));
      if (st.size === size) {
        this.stats.existing++;
        return 'ok';
      }
      return 'corrupt';
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 'absent';
      throw err;
    }
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
    if (this.pending.size === 0) {
      await this.pool?.close();
      return;
    }
    await syncFilesystem(this.root);
    const moves = [...this.pending.values()];
    if (this.pool) {
      // Each worker links its share; all settle before returning (see below).
      const n = this.pool.size;
      const shares = Array.from({ length: n }, (_, k) => moves.filter((_m, i) => i % n === k));
      const settled = await Promise.allSettled(
        shares.filter((s) => s.length > 0).map((items) => this.pool!.run({ op: 'move', items })),
      );
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      this.pending.clear();
      await this.pool.close();
      await syncFilesystem(this.root);
      return;
    }
    // Links are independent of each other; a few in flight keep the thread pool busy.
    let next = 0;
    let failing = false;
    const mover = async () => {
      while (next < moves.length && !failing) {
        const p = moves[next++];
        try {
          await moveIntoPlace(p.temp, p.dest, p.replace);
        } catch (err) {
          failing = true;
          throw err;
        }
      }
    };
    // Settle every mover before returning, even on failure: abort() must not remove temp files
    // that a mover is still linking.
    const settled = await Promise.allSettled(
      Array.from({ length: Math.min(COMMIT_CONCURRENCY, moves.length) }, mover),
    );
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    this.pending.clear();
    await syncFilesystem(this.root);
  }

  async abort(): Promise<void> {
    await this.pool?.close();
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

function checkSize(seen: number, size: number): void {
  if (seen !== size) {
    throw new DataLossError(`file content is ${seen} bytes, its header says ${size}`, { op: 'write-object' });
  }
}
