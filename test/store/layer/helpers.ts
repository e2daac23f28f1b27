// Shared by the layer and source tests: an in-memory ObjectSink (held to the same conformance
// suite as the real writer: test/store/suite-local.test.ts) and a tar builder.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { DataLossError } from '../../../src/errors.js';
import type { ObjectSink } from '../../../src/store/types.js';

export class MemorySink implements ObjectSink {
  readonly objects = new Map<string, Buffer>();
  async write(content: Readable, size: number): Promise<{ digest: string; size: number }> {
    const chunks: Buffer[] = [];
    for await (const c of content) chunks.push(c as Buffer);
    const data = Buffer.concat(chunks);
    if (data.length !== size) {
      // Like the real writer: a size mismatch is data loss, and nothing is stored.
      throw new DataLossError(`sink got ${data.length} bytes, told ${size}`, { op: 'write-object' });
    }
    const digest = createHash('sha256').update(data).digest('hex');
    this.objects.set(digest, data);
    return { digest, size: data.length };
  }
}

export type EntrySpec = Partial<tar.Header> & {
  name: string;
  body?: Buffer | string;
  pax?: Record<string, string>;
};

/** A tar built with tar-stream's pack. */
export async function makeTar(entries: EntrySpec[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const { body, ...header } of entries) {
    await new Promise<void>((resolve, reject) => {
      const h = { mode: 0o644, mtime: new Date(1_700_000_000_000), ...header };
      if (body !== undefined)
        pack.entry(h, typeof body === 'string' ? Buffer.from(body) : body, (e) =>
          e ? reject(e) : resolve(),
        );
      else pack.entry(h, (e) => (e ? reject(e) : resolve())).end(null);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Replace a placeholder inside a built tar by bytes of the same length (binary PAX values). */
export function patchBytes(tarBuf: Buffer, placeholder: string, value: Buffer): Buffer {
  const at = tarBuf.indexOf(placeholder);
  if (at < 0 || placeholder.length !== value.length) throw new Error('placeholder not found');
  const out = Buffer.from(tarBuf);
  value.copy(out, at);
  return out;
}
