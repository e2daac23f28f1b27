// Digest strings ("sha256:<hex>") and their hashing. Only sha256 and sha512 are accepted: a
// digest strata cannot recompute is a digest it cannot verify.
import { createHash, type Hash } from 'node:crypto';
import { InvalidArgumentError } from '../../errors.js';
import { native, nativeBuilt, type Sha256Handle } from '../../native-addon.js';

const PATTERN = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export function checkDigest(digest: string, what: string): string {
  if (!PATTERN.test(digest)) {
    throw new InvalidArgumentError(`${what}: unsupported or malformed digest ${JSON.stringify(digest)}`, {
      op: 'import',
      digest,
    });
  }
  return digest;
}

export function hasherFor(digest: string): Hash {
  return createHash(digest.slice(0, digest.indexOf(':')));
}

export function sha256Digest(data: Buffer): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

export function digestOf(hash: Hash, digest: string): string {
  return digest.slice(0, digest.indexOf(':') + 1) + hash.digest('hex');
}

/**
 * A digest computed over a stream. `update` returns a promise when the caller should wait before
 * giving more (the hash is that far behind), else undefined; `digest` is "<algo>:<hex>".
 */
export interface StreamHash {
  update(chunk: Buffer): Promise<void> | undefined;
  digest(): Promise<string>;
}

/** Hashed on the JS thread, as each chunk arrives. */
class InlineHash implements StreamHash {
  private readonly hash: Hash;
  constructor(private readonly algo: string) {
    this.hash = createHash(algo);
  }
  update(chunk: Buffer): undefined {
    this.hash.update(chunk);
  }
  digest(): Promise<string> {
    return Promise.resolve(`${this.algo}:${this.hash.digest('hex')}`);
  }
}

/** Bytes gathered before one trip to the pool; trips queued before the stream must wait. */
const POOL_BATCH = 1 << 20;
const POOL_QUEUED = 8;

/**
 * sha256 on libuv's pool (the addon's sha256Update): batches of chunks, one update at a time,
 * so the JS thread is free for the tar and hashing runs beside decompression. The chunks are
 * kept until hashed (at most POOL_QUEUED batches: past that, update asks the caller to wait).
 */
class PoolHash implements StreamHash {
  private readonly handle: Sha256Handle = native.sha256Create();
  private batch: Buffer[] = [];
  private bytes = 0;
  private tail: Promise<void> = Promise.resolve();
  private queued = 0;

  update(chunk: Buffer): Promise<void> | undefined {
    this.batch.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes < POOL_BATCH) return undefined;
    this.send();
    return this.queued > POOL_QUEUED ? this.tail : undefined;
  }

  private send(): void {
    const batch = this.batch;
    this.batch = [];
    this.bytes = 0;
    this.queued++;
    this.tail = this.tail.then(() => native.sha256Update(this.handle, batch)).finally(() => this.queued--);
    this.tail.catch(() => {}); // surfaced by the next update's wait or by digest()
  }

  async digest(): Promise<string> {
    if (this.batch.length > 0) this.send();
    await this.tail;
    return `sha256:${native.sha256Digest(this.handle)}`;
  }
}

/** A stream hasher for `digest`'s algorithm: sha256 on the pool when the addon is built. */
export function streamHashFor(digest: string): StreamHash {
  const algo = digest.slice(0, digest.indexOf(':'));
  return algo === 'sha256' && nativeBuilt ? new PoolHash() : new InlineHash(algo);
}
