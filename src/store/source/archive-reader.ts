// Read-only access to the files of an image, wherever they are: a directory (OCI layout) or the
// members of a tar (oci-archive, docker-archive). Paths are '/'-separated and relative.
import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { InvalidArgumentError, NotFoundError, isErrno } from '../../errors.js';
import { indexTar, type TarMember } from './tar-index.js';

export interface ArchiveReader {
  /** "OCI layout /x", "archive /y.tar": used in every error message. */
  readonly description: string;
  /** Size of a regular file, undefined when absent. */
  size(path: string): Promise<number | undefined>;
  /** A stream of the file; NotFoundError naming the path and the archive when absent. */
  open(path: string): Promise<Readable>;
  close(): Promise<void>;
}

function safeRelative(path: string, where: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) {
    throw new InvalidArgumentError(`${where}: refusing path ${JSON.stringify(path)}`, { op: 'import', path });
  }
  return parts.join('/');
}

export class DirReader implements ArchiveReader {
  readonly description: string;
  constructor(
    private readonly dir: string,
    description?: string,
  ) {
    this.description = description ?? `OCI layout ${dir}`;
  }

  async size(path: string): Promise<number | undefined> {
    try {
      const st = await stat(join(this.dir, safeRelative(path, this.description)));
      return st.isFile() ? st.size : undefined;
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
      throw err;
    }
  }

  async open(path: string): Promise<Readable> {
    const full = join(this.dir, safeRelative(path, this.description));
    let fh: FileHandle;
    try {
      fh = await open(full, 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) {
        throw new NotFoundError(`${path} not found in ${this.description}`, { op: 'import', path: full });
      }
      throw err;
    }
    return fh.createReadStream();
  }

  async close(): Promise<void> {}
}

export class TarReader implements ArchiveReader {
  readonly description: string;
  private constructor(
    private readonly file: string,
    private readonly members: Map<string, TarMember>,
  ) {
    this.description = `archive ${file}`;
  }

  static async open(file: string): Promise<TarReader> {
    const fh = await open(file, 'r');
    try {
      return new TarReader(file, await indexTar(fh, file));
    } finally {
      await fh.close();
    }
  }

  /** Follows symlinks and hard links between members (docker save links repeated layers). */
  private member(path: string): TarMember | undefined {
    let name = safeRelative(path, this.description);
    for (let hops = 0; hops < 16; hops++) {
      const m = this.members.get(name);
      if (!m || m.type === 'file') return m;
      if (m.type === 'symlink') {
        const dir = name.split('/').slice(0, -1).join('/');
        name = safeRelative(m.target.startsWith('/') ? m.target : `${dir}/${m.target}`, this.description);
      } else name = safeRelative(m.target, this.description);
    }
    return undefined;
  }

  has(path: string): boolean {
    return this.member(path) !== undefined;
  }

  async size(path: string): Promise<number | undefined> {
    return this.member(path)?.size;
  }

  async open(path: string): Promise<Readable> {
    const m = this.member(path);
    if (!m) throw new NotFoundError(`${path} not found in ${this.description}`, { op: 'import', path });
    if (m.size === 0) return Readable.from([]);
    // By path, not through one shared FileHandle: on Node 20 a FileHandle stream destroyed early
    // makes the handle's next stream close at once, with no data.
    return createReadStream(this.file, { start: m.offset, end: m.offset + m.size - 1 });
  }

  async close(): Promise<void> {}
}

/** Read a whole (small) file, refusing anything larger than `max` bytes. */
export async function readSmall(reader: ArchiveReader, path: string, max: number): Promise<Buffer> {
  const size = await reader.size(path);
  if (size === undefined) {
    throw new NotFoundError(`${path} not found in ${reader.description}`, { op: 'import', path });
  }
  if (size > max) {
    throw new InvalidArgumentError(`${path} in ${reader.description} is too large (${size} bytes)`, {
      op: 'import',
      path,
    });
  }
  const chunks: Buffer[] = [];
  for await (const c of await reader.open(path)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
