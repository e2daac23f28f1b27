// Reading what a runtime hands to strata's hooks: a bundle's config.json and the OCI state on
// stdin. Both are validated here, at the boundary, with errors that name the bundle.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InvalidArgumentError, NotFoundError, isErrno } from '../errors.js';
import type { HookState } from '../schema/generated/hook-state.js';
import type { RuntimeConfig } from '../schema/generated/runtime-config.js';
import { parseAndValidate } from '../schema/validate.js';
import { checkContainerId } from './container-id.js';

/** Load and validate a config.json file; errors read "config.json of bundle <dir>: …". */
export function validateRuntimeConfigFile(path: string): RuntimeConfig {
  const what = `config.json of bundle ${dirname(path)}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT'))
      throw new NotFoundError(`${what}: not found`, { op: 'load-config', path, cause: err });
    throw new InvalidArgumentError(`${what}: cannot be read: ${(err as Error).message}`, {
      op: 'load-config',
      path,
      cause: err,
    });
  }
  return parseAndValidate<RuntimeConfig>('runtime-config', text, what);
}

/** `<bundle>/config.json`, validated. */
export function loadBundleConfig(bundle: string): RuntimeConfig {
  return validateRuntimeConfigFile(join(bundle, 'config.json'));
}

/** The state JSON a hook reads from stdin; its id is where a runtime's container id enters strata. */
export function parseHookState(text: string | Buffer): HookState {
  const state = parseAndValidate<HookState>('hook-state', text, "OCI state on the hook's stdin");
  checkContainerId(state.id, "container id in the OCI state on the hook's stdin:");
  return state;
}
