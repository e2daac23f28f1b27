// Conformance suite for the store's role interfaces (src/store/types.ts), after containerd's
// core/content/testsuite: every implementation of ObjectSink, Ingester, Provider and Manager
// registers these cases with its own setup, so they all promise the same behaviour. The cases
// only use the interfaces; what differs between implementations is in the setup's answers.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataLossError } from '../../src/errors.js';
import type { Ingester, Manager, ObjectSink, Provider } from '../../src/store/types.js';

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** `data` as a stream of `parts` chunks (the last one takes the remainder). */
export function chunked(data: Buffer, parts = 1): Readable {
  const size = Math.max(1, Math.ceil(data.length / parts));
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) chunks.push(data.subarray(at, at + size));
  return Readable.from(chunks, { objectMode: false });
}

/** Deterministic bytes that differ per seed (not all-equal, so a short copy cannot pass). */
export function content(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

export interface SinkFixture {
  sink: ObjectSink;
  /** The stored bytes of `digest` (after whatever step makes them readable), or undefined. */
  read(digest: string): Promise<Buffer | undefined>;
  cleanup(): Promise<void>;
}

/** ObjectSink: content in, its sha256 out; the bytes stored are exactly the bytes given. */
export function objectSinkSuite(test: Test, name: string, setup: () => Promise<SinkFixture>): void {
  const withSink = (fn: (f: SinkFixture) => Promise<void>) => async () => {
    const f = await setup();
    try {
      await fn(f);
    } finally {
      await f.cleanup();
    }
  };

  test(
    `${name} (ObjectSink): answers the sha256 hex and size, and stores exactly those bytes`,
    withSink(async (f) => {
      for (const [size, parts] of [
        [0, 1],
        [1, 1],
        [5000, 3],
        [(3 << 20) + 7, 5], // above the writer's in-memory limit: the streamed path
      ]) {
        const data = content(size, size);
        const got = await f.sink.write(chunked(data, parts), size);
        assert.equal(got, { digest: sha256(data), size }, `${size} bytes`);
        assert.ok((await f.read(got.digest))?.equals(data), `${size} bytes read back`);
      }
    }),
  );

  test(
    `${name} (ObjectSink): the digest does not depend on how the content is chunked`,
    withSink(async (f) => {
      const data = content(100_000, 7);
      const one = await f.sink.write(chunked(data, 1), data.length);
      const many = await f.sink.write(chunked(data, 97), data.length);
      assert.is(many.digest, one.digest);
    }),
  );

  test(
    `${name} (ObjectSink): the same content written concurrently gives one object`,
    withSink(async (f) => {
      const data = content(300_000, 11);
      const results = await Promise.all(
        [1, 2, 3, 4].map((parts) => f.sink.write(chunked(data, parts), data.length)),
      );
      assert.equal(new Set(results.map((r) => r.digest)), new Set([sha256(data)]));
      assert.ok((await f.read(sha256(data)))?.equals(data));
    }),
  );

  test(
    `${name} (ObjectSink): content shorter or longer than its size is DataLossError and stores nothing`,
    withSink(async (f) => {
      for (const [size, told] of [
        [10, 11],
        [10, 9],
        [(2 << 20) + 1, 2 << 20],
      ]) {
        const data = content(size, 3 + size);
        const err = await f.sink.write(chunked(data, 2), told).catch((e: unknown) => e);
        assert.instance(err, DataLossError, `${size} bytes told ${told}`);
        assert.is(await f.read(sha256(data)), undefined, `${size} bytes told ${told}: nothing stored`);
      }
    }),
  );

  test(
    `${name} (ObjectSink): a failing content stream rejects the write`,
    withSink(async (f) => {
      async function* broken() {
        yield Buffer.from('partial');
        throw new Error('source broke');
      }
      const err = await f.sink.write(Readable.from(broken()), 100).catch((e: unknown) => e);
      assert.instance(err, Error);
      assert.match((err as Error).message, 'source broke');
    }),
  );
}

export interface StoreFixture {
  /** A fresh ingester writing into the store `provider` reads. */
  ingester(): Ingester;
  provider: Provider & Manager;
  /** Where the ingester keeps temp files; must be empty after commit or abort. */
  tempDir: string;
  /** Whether written objects may be visible before commit (fsync mode places them at once). */
  visibleBeforeCommit: boolean;
  cleanup(): Promise<void>;
}

/** Ingester + Provider + Manager over one store. */
export function ingesterSuite(test: Test, name: string, setup: () => Promise<StoreFixture>): void {
  const withStore = (fn: (f: StoreFixture) => Promise<void>) => async () => {
    const f = await setup();
    try {
      await fn(f);
    } finally {
      await f.cleanup();
    }
  };
  const readObject = (f: StoreFixture, digest: string) => readFile(f.provider.objectPath(digest));

  // The ObjectSink promises hold for an ingester too; "read" is "after commit, through Provider".
  objectSinkSuite(test, name, async () => {
    const f = await setup();
    const ingester = f.ingester();
    return {
      sink: ingester,
      read: async (digest) => {
        await ingester.commit();
        return (await f.provider.hasObject(digest)) ? readObject(f, digest) : undefined;
      },
      cleanup: async () => {
        await ingester.abort();
        await f.cleanup();
      },
    };
  });

  test(
    `${name} (Ingester): commit makes objects visible through the Provider and leaves no temp files`,
    withStore(async (f) => {
      const ing = f.ingester();
      const a = content(10_000, 1);
      const b = content((1 << 20) + 1, 2);
      const ra = await ing.write(chunked(a, 2), a.length);
      const rb = await ing.write(chunked(b, 4), b.length);
      if (!f.visibleBeforeCommit)
        assert.not.ok(await f.provider.hasObject(ra.digest), 'visible before commit');
      await ing.commit();
      assert.ok(await f.provider.hasObject(ra.digest, a.length));
      assert.ok(await f.provider.hasObject(`sha256:${rb.digest}`, b.length), 'prefixed digest');
      assert.not.ok(await f.provider.hasObject(ra.digest, a.length + 1), 'wrong size is not the object');
      assert.equal(await readObject(f, rb.digest), b);
      assert.equal(await readdir(f.tempDir), []);
    }),
  );

  test(
    `${name} (Ingester): abort forgets uncommitted objects and removes temp files`,
    withStore(async (f) => {
      const ing = f.ingester();
      const data = content(20_000, 5);
      const { digest } = await ing.write(chunked(data, 3), data.length);
      await ing.abort();
      assert.equal(await readdir(f.tempDir), []);
      if (!f.visibleBeforeCommit) assert.not.ok(await f.provider.hasObject(digest));
      await ing.commit(); // nothing left to commit: a no-op, not an error
      if (!f.visibleBeforeCommit) assert.not.ok(await f.provider.hasObject(digest));
    }),
  );

  test(
    `${name} (Ingester): content already in the store is kept, and a second ingester agrees`,
    withStore(async (f) => {
      const data = content(50_000, 9);
      const first = f.ingester();
      const r1 = await first.write(chunked(data), data.length);
      await first.commit();
      const second = f.ingester();
      const r2 = await second.write(chunked(data, 5), data.length);
      await second.commit();
      assert.equal(r2, r1);
      assert.equal(await readObject(f, r1.digest), data);
    }),
  );

  test(
    `${name} (Provider, Manager): listObjects yields each object once at objectPath; deleteObject removes`,
    withStore(async (f) => {
      const ing = f.ingester();
      const datas = [content(100, 1), content(5000, 2), content(5000, 3)];
      const digests: string[] = [];
      for (const d of datas) digests.push((await ing.write(chunked(d), d.length)).digest);
      await ing.write(chunked(datas[0]), datas[0].length); // a duplicate: still one object
      await ing.commit();
      const listed: { digest: string; path: string }[] = [];
      for await (const o of f.provider.listObjects()) listed.push(o);
      assert.equal(listed.map((o) => o.digest).sort(), [...digests].sort());
      for (const o of listed) assert.is(o.path, f.provider.objectPath(o.digest));
      assert.is(f.provider.objectPath(`sha256:${digests[0]}`), f.provider.objectPath(digests[0]));

      await f.provider.deleteObject(digests[1]);
      assert.not.ok(await f.provider.hasObject(digests[1]));
      assert.ok(await f.provider.hasObject(digests[2]));
      await f.provider.deleteObject(digests[1]); // already gone: not an error
      const after: string[] = [];
      for await (const o of f.provider.listObjects()) after.push(o.digest);
      assert.equal(after.sort(), [digests[0], digests[2]].sort());
    }),
  );
}
