// Tar entry names to tree paths. Like tar, a leading '/' or './' is dropped (OCI layers are
// relative to the root); unlike tar, any '..' component is refused outright: no legitimate layer
// needs one, and refusing them all leaves no way to climb out of the root. Names Linux itself
// could not create are refused too: a component over NAME_MAX bytes, or a path whose absolute
// form ('/' + path, plus its NUL) does not fit PATH_MAX; accepted, they broke `ls` and `stat`
// inside the container, and a path 20,000 components deep cost the importer 500 MiB.
import { InvalidArgumentError } from '../../errors.js';

export const PATH_MAX = 4096;
export const NAME_MAX = 255;
const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

/** Components of an entry name; [] is the root itself. `layer` names the layer for messages. */
export function entryComponents(name: string, layer: string, what = 'entry'): string[] {
  const refuse = (why: string): never => {
    throw new InvalidArgumentError(`layer ${layer}: ${what} ${JSON.stringify(shorten(name))} ${why}`, {
      op: 'apply-layer',
      digest: layer.split(' ')[0],
      path: name,
    });
  };
  if (name.includes('\0')) refuse('contains a NUL byte');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) refuse("escapes the root ('..')");
  let bytes = 0;
  for (const [i, p] of parts.entries()) {
    // A whiteout stands for the name it hides (an opaque marker for its directory): tools make
    // '.wh.NAME' from a NAME that fits, so the limits apply to NAME.
    const hidden = i === parts.length - 1 && p.startsWith(WHITEOUT);
    if (hidden && p === OPAQUE) break;
    const len = Buffer.byteLength(p) - (hidden ? WHITEOUT.length : 0);
    if (len > NAME_MAX) refuse(`has a component of ${len} bytes, over NAME_MAX (${NAME_MAX})`);
    bytes += len + 1;
  }
  if (bytes + 1 > PATH_MAX) refuse(`is ${bytes} bytes long as an absolute path, over PATH_MAX (${PATH_MAX})`);
  return parts;
}

/** Symlink targets over PATH_MAX - 1 bytes are refused by symlink(2) (ENAMETOOLONG). */
export function checkSymlinkTarget(target: string, name: string, layer: string): void {
  const len = Buffer.byteLength(target);
  if (len >= PATH_MAX) {
    throw new InvalidArgumentError(
      `layer ${layer}: entry ${JSON.stringify(shorten(name))}: symlink target of ${len} bytes, over PATH_MAX (${PATH_MAX})`,
      { op: 'apply-layer', digest: layer.split(' ')[0], path: name },
    );
  }
}

/** A name for a message: hostile names can be megabytes long. */
export function shorten(name: string): string {
  return name.length <= 200 ? name : `${name.slice(0, 100)}…${name.slice(-100)}`;
}
