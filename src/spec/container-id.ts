// The one rule for container ids, checked where an id enters strata (the OCI state a runtime hands
// the hooks). It is runc's (libcontainer/factory_linux.go, runc 1.1): `^[\w+-\.]+$`, where `+-\.`
// is the range '+'..'.', so the characters are letters, digits and _ + , - . — and the id must
// stay itself under path cleaning, which refuses "." and "..". A leading dot is fine for runc;
// what strata derives from an id (lease file names) must cope with every id this accepts.
import { InvalidArgumentError } from '../errors.js';

const ID_CHARS = /^[A-Za-z0-9_+,.-]+$/;
/** runc keeps each container's state in a directory named by its id: one path component. */
const NAME_MAX = 255;

export function isContainerId(id: string): boolean {
  return ID_CHARS.test(id) && id !== '.' && id !== '..' && id.length <= NAME_MAX;
}

/** `id`, or an InvalidArgument error that says what a valid id is. */
export function checkContainerId(id: string, where = 'container id'): string {
  if (!isContainerId(id)) {
    throw new InvalidArgumentError(
      `${where} ${JSON.stringify(id)} is not valid: use 1-${NAME_MAX} letters, digits and "_", "+", ",", "-", "." (runc's rule), not "." or ".."`,
      { op: 'container-id' },
    );
  }
  return id;
}
