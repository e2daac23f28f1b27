// Opening a store: resolve its root, create the tree of layout.ts, and the Provider/Manager
// roles over objects/. Everything else (import, records, refs, leases, gc, fsck) takes a Store.
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { isErrno } from '../errors.js';
import { defaultRoot, ingestDir, objectPath, SHA256_HEX } from './layout.js';
import type { Manager, Provider } from './types.js';

const DIRS = ['objects', 'blobs/sha256', 'indexes/sha256', 'images', 'refs', 'leases', 'ingest'];

export class Store implements Provider, Manager {
  constructor(readonly root: string) {}

  get ingestRoot(): string {
    return ingestDir(this.root);
  }

  objectPath(digest: string): string {
    return objectPath(this.root, digest);
  }

  async hasObject(digest: string, size?: number): Promise<boolean> {
    try {
      const st = await fs.stat(this.objectPath(digest));
      return size === undefined || st.size === size;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  async *listObjects(): AsyncIterable<{ digest: string; path: string }> {
    const top = join(this.root, 'objects');
    for (const prefix of (await fs.readdir(top)).sort()) {
      let names: string[];
      try {
        names = await fs.readdir(join(top, prefix));
      } catch (err) {
        if (isErrno(err, 'ENOTDIR')) {
          yield { digest: prefix, path: join(top, prefix) };
          continue;
        }
        throw err;
      }
      // Files that are not a valid name are yielded as they are: fsck reports them.
      for (const name of names.sort()) yield { digest: prefix + name, path: join(top, prefix, name) };
    }
  }

  async deleteObject(digest: string): Promise<void> {
    await fs.rm(this.objectPath(digest), { force: true });
  }
}

export function isObjectName(digest: string): boolean {
  return SHA256_HEX.test(digest);
}

/** Root precedence: explicit (--root) > STRATA_ROOT > layout.defaultRoot(). */
export function resolveRoot(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return explicit || env.STRATA_ROOT || defaultRoot(env);
}

export async function openStore(root?: string): Promise<Store> {
  const store = new Store(resolveRoot(root));
  for (const dir of DIRS) await fs.mkdir(join(store.root, dir), { recursive: true, mode: 0o700 });
  return store;
}
