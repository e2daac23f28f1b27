// openSource(spec): the one entry point to read an image from what users have.
//   oci:DIR[:tag]   oci-archive:FILE[:tag]   docker-archive:FILE[:name:tag | :@N]   PATH[:ref]
//   containerd:NAME (containerd's content store)   containers-storage:NAME (podman's storage)
// A bare path is detected: a directory with oci-layout, or a tar holding oci-layout (oci-archive)
// or manifest.json (docker-archive). Since paths may contain ':', the path is the longest prefix
// of the spec (cut at a ':') that exists; the rest is the reference.
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { InvalidArgumentError, NotFoundError, isErrno } from '../../errors.js';
import { DirReader, TarReader } from './archive-reader.js';
import { openDockerArchive } from './docker-archive.js';
import { openOciImage } from './oci-layout.js';
import type { ImageSource, OpenSourceOptions, Platform } from './types.js';

export type SourceKind = 'oci' | 'oci-archive' | 'docker-archive';

export interface ParsedSpec {
  kind: SourceKind | undefined;
  path: string;
  ref: string | undefined;
}

export const DEFAULT_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return false;
    throw err;
  }
}

/** Split a spec into transport, path and reference; NotFoundError when no prefix exists. */
export async function parseSpec(spec: string): Promise<ParsedSpec> {
  const m = /^(oci|oci-archive|docker-archive):(.*)$/.exec(spec);
  const kind = m ? (m[1] as SourceKind) : undefined;
  const rest = m ? m[2] : spec;
  if (rest === '')
    throw new InvalidArgumentError(`image source ${JSON.stringify(spec)} names no path`, { op: 'import' });
  for (let cut = rest.length; cut > 0; cut = rest.lastIndexOf(':', cut - 1)) {
    const path = rest.slice(0, cut);
    if (await exists(path)) {
      const ref = cut < rest.length ? rest.slice(cut + 1) : undefined;
      return { kind, path, ref: ref === '' ? undefined : ref };
    }
  }
  throw new NotFoundError(`image source ${JSON.stringify(spec)}: no such file or directory`, {
    op: 'import',
    path: rest,
  });
}

export async function openSource(spec: string, opts: OpenSourceOptions = {}): Promise<ImageSource> {
  const platform = opts.platform ?? DEFAULT_PLATFORM;
  const foreign = /^(containerd|containers-storage):(.+)$/.exec(spec);
  if (foreign?.[1] === 'containerd') {
    const { openContainerdImage } = await import('./containerd-content.js');
    return openContainerdImage({ ...opts.containerd, name: foreign[2], platform });
  }
  if (foreign?.[1] === 'containers-storage') {
    const { openContainersStorageImage } = await import('./containers-storage.js');
    return openContainersStorageImage({ ...opts.containersStorage, name: foreign[2] });
  }
  const { kind, path: given, ref } = await parseSpec(spec);
  const path = resolve(given);
  const isDir = (await stat(path)).isDirectory();
  if (isDir) {
    if (kind !== undefined && kind !== 'oci') {
      throw new InvalidArgumentError(`${kind}:${path} is a directory, not an archive`, {
        op: 'import',
        path,
      });
    }
    if (!(await exists(resolve(path, 'oci-layout')))) {
      throw new InvalidArgumentError(`${path} is not an OCI image layout (no oci-layout file)`, {
        op: 'import',
        path,
      });
    }
    return openOciImage(new DirReader(path), `oci:${path}`, ref, platform);
  }
  if (kind === 'oci') {
    throw new InvalidArgumentError(`oci:${path} is not a directory (use oci-archive: for a tar)`, {
      op: 'import',
      path,
    });
  }
  const reader = await TarReader.open(path);
  try {
    const detected: SourceKind | undefined = reader.has('oci-layout')
      ? 'oci-archive'
      : reader.has('manifest.json')
        ? 'docker-archive'
        : undefined;
    const chosen = kind ?? detected;
    if (chosen === 'oci-archive') return await openOciImage(reader, `oci-archive:${path}`, ref, platform);
    if (chosen === 'docker-archive') return await openDockerArchive(reader, `docker-archive:${path}`, ref);
    throw new InvalidArgumentError(
      `${path} is neither an oci-archive nor a docker-archive (no oci-layout or manifest.json)`,
      {
        op: 'import',
        path,
      },
    );
  } catch (err) {
    await reader.close();
    throw err;
  }
}
