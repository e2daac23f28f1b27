// Shared by the store tests: a fresh store in a temp dir, the busybox fixture, and the layer
// applier. The real applier (src/store/layer/) is used when it is there; until it lands, a
// minimal one (directories, regular files, symlinks, hard links; no whiteouts) lets the store's
// own orchestration be tested on real archives.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { openStore, type Store } from '../../src/store/store.js';
import { newDir, type TreeNode } from '../../src/store/tree-index.js';
import type { ApplyLayer, ObjectSink } from '../../src/store/types.js';

export async function tempStore(): Promise<{ store: Store; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-store-'));
  return {
    store: await openStore(join(dir, 'root')),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

async function minimalApply(root: TreeNode, tar: Readable, sink: ObjectSink): Promise<void> {
  const ex = extract();
  tar.on('error', (err) => ex.destroy(err));
  tar.pipe(ex);
  const dirOf = (parts: string[]): TreeNode => {
    let node = root;
    for (const p of parts) {
      let kid = node.children!.get(p);
      if (!kid) node.children!.set(p, (kid = newDir()));
      node = kid;
    }
    return node;
  };
  for await (const entry of ex) {
    const h = entry.header;
    const parts = h.name.split('/').filter((p) => p && p !== '.');
    const name = parts.pop();
    const base = { mode: (h.mode ?? 0o644) & 0o7777, uid: h.uid ?? 0, gid: h.gid ?? 0, mtimeSec: 0 };
    if (!name) {
      entry.resume();
      continue;
    }
    const parent = dirOf(parts);
    if (h.type === 'directory') {
      const d = dirOf([...parts, name]);
      Object.assign(d, base);
      entry.resume();
    } else if (h.type === 'file') {
      const { digest, size } = await sink.write(entry.pipe(new PassThrough()), h.size ?? 0);
      parent.children!.set(name, { type: 'file', ...base, digest, size });
    } else if (h.type === 'symlink') {
      parent.children!.set(name, { type: 'symlink', ...base, target: h.linkname ?? '' });
      entry.resume();
    } else if (h.type === 'link') {
      const tparts = (h.linkname ?? '').split('/').filter((p) => p && p !== '.');
      const tname = tparts.pop()!;
      const target = dirOf(tparts).children!.get(tname);
      if (target) parent.children!.set(name, target);
      entry.resume();
    } else entry.resume();
  }
}

export async function layerApplier(): Promise<ApplyLayer> {
  for (const spec of ['../../src/store/layer/index.js', '../../src/store/layer/apply-layer.js']) {
    try {
      const mod = (await import(spec)) as { applyLayer?: ApplyLayer };
      if (mod.applyLayer) return mod.applyLayer;
    } catch {
      // not landed yet
    }
  }
  return minimalApply as ApplyLayer;
}

/** A temp store holding the busybox fixture under `name`. */
export async function storeWithBusybox(name = 'bb'): Promise<{
  store: Store;
  cleanup: () => Promise<void>;
  digest: string;
}> {
  const { busyboxImage } = await import('../fixtures/images.js');
  const { importImage } = await import('../../src/store/import.js');
  const img = await busyboxImage();
  const t = await tempStore();
  const r = await importImage(t.store, `oci:${img.ociLayout}:latest`, {
    name,
    applyLayer: await layerApplier(),
  });
  return { ...t, digest: r.record.manifestDigest };
}
