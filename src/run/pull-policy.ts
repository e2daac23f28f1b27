// `strata run --pull missing|always|never` (podman's words and default): before a container is
// created, the image is pulled from its registry when the policy asks for it.
import { NotFoundError, StrataError } from '../errors.js';
import { resolveImageRecord } from '../store/records.js';
import type { PullPolicy } from './args.js';

/** Whether `image` names an image in the store. */
export async function hasImage(storeRoot: string, image: string): Promise<boolean> {
  try {
    await resolveImageRecord(storeRoot, image);
    return true;
  } catch (err) {
    if (err instanceof NotFoundError) return false;
    throw err;
  }
}

/** Whether the policy needs the Node CLI to pull first (the daemon then hands the run back). */
export async function needsPull(
  storeRoot: string,
  image: string,
  policy: PullPolicy = 'missing',
): Promise<boolean> {
  if (policy === 'never') return false;
  if (policy === 'always') return true;
  return !(await hasImage(storeRoot, image));
}

/** Pull `image` when the policy says so; progress on stderr when it is a TTY. */
export async function ensureImage(
  storeRoot: string,
  image: string,
  policy: PullPolicy = 'missing',
  note: (line: string) => void = (l) => process.stderr.write(l),
): Promise<void> {
  if (!(await needsPull(storeRoot, image, policy))) return;
  // Loaded only when a pull happens: the run start path stays without undici.
  const { pullImage } = await import('../registry/pull.js');
  const { openStore } = await import('../store/store.js');
  const store = await openStore(storeRoot);
  if (process.stderr.isTTY) note(`strata: pulling ${image}...\n`);
  let r;
  try {
    r = await pullImage(store, image);
  } catch (err) {
    if (policy !== 'missing' || !(err instanceof StrataError)) throw err;
    throw new StrataError(
      err.kind,
      `no image named ${JSON.stringify(image)} in the store, and pulling it failed: ${err.message}`,
      {
        op: 'pull',
        ref: image,
        cause: err,
      },
    );
  }
  if (process.stderr.isTTY && !r.existing)
    note(`strata: pulled ${r.names[0]} (${r.record.manifestDigest})\n`);
}
