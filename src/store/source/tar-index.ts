// Index a tar's members once (name -> data offset and size) so that blobs can then be read by
// byte range without extracting the archive.
import type { FileHandle } from 'node:fs/promises';
import * as tar from 'tar-stream';
import { InvalidArgumentError } from '../../errors.js';
import { sniffCompression } from './media-types.js';

/** tar-stream's header as it really is (its typings omit these fields). */
export type RawHeader = Omit<tar.Header, 'type' | 'pax'> & {
  type: tar.Header['type'] | null;
  byteOffset?: number;
  pax?: Record<string, string> | null;
};

export type TarMember =
  | { type: 'file'; offset: number; size: number }
  | { type: 'symlink' | 'link'; target: string; offset: number; size: number };

function memberName(name: string): string {
  return name
    .split('/')
    .filter((p) => p !== '' && p !== '.')
    .join('/');
}

export async function indexTar(fh: FileHandle, file: string): Promise<Map<string, TarMember>> {
  const head = Buffer.alloc(512);
  const { bytesRead } = await fh.read(head, 0, 512, 0);
  const compression = sniffCompression(head.subarray(0, bytesRead));
  if (compression !== 'none') {
    throw new InvalidArgumentError(
      `archive ${file} is ${compression}-compressed; decompress it first (strata reads plain tar archives)`,
      { op: 'import', path: file },
    );
  }
  const members = new Map<string, TarMember>();
  const extract = tar.extract();
  const input = fh.createReadStream({ start: 0, autoClose: false });
  input.on('error', (err) => extract.destroy(err));
  input.pipe(extract as unknown as NodeJS.WritableStream); // streamx Writable speaks enough of the Writable protocol
  try {
    for await (const entry of extract) {
      const h = entry.header as RawHeader;
      const name = memberName(h.name);
      const offset = h.byteOffset ?? 0;
      if (h.type === 'file' || h.type === 'contiguous-file') {
        members.set(name, { type: 'file', offset, size: h.size ?? 0 });
      } else if ((h.type === 'symlink' || h.type === 'link') && h.linkname) {
        members.set(name, { type: h.type, target: h.linkname, offset, size: 0 });
      }
      entry.resume();
    }
  } catch (err) {
    input.destroy();
    throw new InvalidArgumentError(`archive ${file} is not a readable tar: ${(err as Error).message}`, {
      op: 'import',
      path: file,
      cause: err,
    });
  }
  if (members.size === 0) {
    throw new InvalidArgumentError(`archive ${file} is empty or not a tar`, { op: 'import', path: file });
  }
  return members;
}
