// Which placeholder entries a container's rootfs needs: every mount destination of its config
// must exist in the image for the hook to move a mount onto it (docs/architecture.md#kernel-facts: ENOENT
// otherwise). Bind mounts of files (/etc/hosts, /etc/resolv.conf, ...) need files, everything
// else directories. The FUSE tree adds what the image lacks (src/mount/fs/placeholders.ts).
import type { PlaceholderSpec } from './fs/placeholders.js';
import type { Mount } from '../schema/generated/runtime-config.js';

/** Whether a bind mount's source is a directory; undefined when it cannot be told. */
export type IsDirectory = (hostPath: string) => boolean | undefined;

export function placeholdersFor(mounts: Mount[] | undefined, isDirectory: IsDirectory): PlaceholderSpec[] {
  const out: PlaceholderSpec[] = [];
  for (const m of mounts ?? []) {
    if (m.destination === '/' || !m.destination.startsWith('/')) continue;
    const isBind = m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind');
    const file = isBind && m.source !== undefined && isDirectory(m.source) === false;
    out.push({ path: m.destination, type: file ? 'file' : 'dir' });
  }
  return out;
}
