// ajv over the project's own schemas (schemas/*.schema.json). Every document that enters
// strata from outside — image manifests and configs, runtime configs, hook state, daemon API
// messages, store records read back from disk — goes through validate() before it is trusted.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError } from '../store/errors.js';

function findSchemaDir(): string {
  // Works both from src/spec (tsx) and dist/src/spec (compiled).
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'schemas');
    try {
      if (readdirSync(candidate).some((f) => f.endsWith('.schema.json'))) return candidate;
    } catch {
      // not here; go up
    }
    dir = dirname(dir);
  }
  throw new Error('schemas/ directory not found');
}

let ajv: Ajv | undefined;
const compiled = new Map<string, ValidateFunction>();

function instance(): Ajv {
  if (ajv) return ajv;
  ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
  // ajv-formats is CommonJS: its default export arrives wrapped under ESM.
  addFormatsModule.default(ajv);
  const dir = findSchemaDir();
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith('.schema.json')) continue;
    const schema = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { $id?: string };
    ajv.addSchema(schema, file.replace(/\.schema\.json$/, ''));
  }
  return ajv;
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
  let fn = compiled.get(name);
  if (!fn) {
    fn = instance().getSchema(name);
    if (!fn) throw new Error(`no schema named ${name}`);
    compiled.set(name, fn);
  }
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
