// Tar entry names to tree paths. Like tar, a leading '/' or './' is dropped (OCI layers are
// relative to the root); unlike tar, any '..' component is refused outright: no legitimate layer
// needs one, and refusing them all leaves no way to climb out of the root.
import { InvalidArgumentError } from '../../errors.js';

/** Components of an entry name; [] is the root itself. */
export function entryComponents(name: string, layer: string, what = 'entry'): string[] {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) {
    throw new InvalidArgumentError(
      `layer ${layer}: ${what} ${JSON.stringify(name)} escapes the root ('..')`,
      {
        op: 'apply-layer',
        digest: layer,
        path: name,
      },
    );
  }
  if (name.includes('\0')) {
    throw new InvalidArgumentError(`layer ${layer}: ${what} ${JSON.stringify(name)} contains a NUL byte`, {
      op: 'apply-layer',
      digest: layer,
      path: name,
    });
  }
  return parts;
}
