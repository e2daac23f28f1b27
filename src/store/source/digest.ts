// Digest strings ("sha256:<hex>") and their hashing. Only sha256 and sha512 are accepted: a
// digest strata cannot recompute is a digest it cannot verify.
import { createHash, type Hash } from 'node:crypto';
import { InvalidArgumentError } from '../../errors.js';

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
