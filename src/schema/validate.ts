// Validation against the project's own schemas (schemas/*.schema.json). Every document that
// enters strata from outside — image manifests and configs, runtime configs, hook state, daemon
// API messages, store records read back from disk — goes through validate() before it is trusted.
// The validators are ajv standalone code generated at build time (scripts/gen-types.mjs), so no
// schema is compiled and ajv itself is not loaded when a command runs: only its tiny runtime
// helpers are. Each schema's validator is its own CommonJS module, required on first use.
import type { ErrorObject } from 'ajv';
import { createRequire } from 'node:module';

import { InvalidArgumentError } from '../errors.js';
import { validatorModules } from './generated/validators.js';

/** The shape of an ajv validation function, standalone or compiled. */
interface ValidateFunction {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

const require = createRequire(import.meta.url);
const made = new Map<string, ValidateFunction>();

function validatorFor(name: string): ValidateFunction {
  let fn = made.get(name);
  if (fn) return fn;
  const file = Object.hasOwn(validatorModules, name) ? validatorModules[name] : undefined;
  if (!file) {
    throw new Error(
      `no schema named ${name}` +
        (name.includes('#') ? ' (sub-schemas are listed in SUB_SCHEMAS of scripts/gen-types.mjs)' : ''),
    );
  }
  // The generated modules are @ts-nocheck JavaScript; this is the one place their type is stated.
  // check-layers: computed (this folder's own generated validators, loaded on first use)
  fn = require(`./generated/validators/${file}`) as ValidateFunction;
  made.set(name, fn);
  return fn;
}

function describe(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .slice(0, 5)
    .map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`)
    .join('; ');
}

/**
 * Validate `data` against schemas/<name>.schema.json and return it typed. `what` names the
 * document in the error ("manifest sha256:…", "config.json of bundle /x").
 */
export function validate<T>(name: string, data: unknown, what: string = name): T {
  const fn = validatorFor(name);
  if (!fn(data))
    throw new InvalidArgumentError(`${what} is invalid: ${describe(fn.errors)}`, { op: 'validate' });
  return data as T;
}

/** Parse JSON text and validate it; a syntax error is an InvalidArgumentError naming the document. */
export function parseAndValidate<T>(name: string, text: string | Buffer, what: string = name): T {
  let data: unknown;
  try {
    data = JSON.parse(text.toString());
  } catch (err) {
    throw new InvalidArgumentError(`${what} is not valid JSON: ${(err as Error).message}`, {
      op: 'validate',
    });
  }
  return validate<T>(name, data, what);
}
