// The official runtime-spec JSON Schemas (draft-04, from Debian's
// golang-github-opencontainers-specs-dev), every file loaded so that their relative $refs resolve.
import Ajv04Module from 'ajv-draft-04';
import type { ErrorObject } from 'ajv';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const DIR = '/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema';

// ajv-draft-04 is CommonJS without named exports: under NodeNext its class is `.default`.
const Ajv04 = Ajv04Module.default;

let ajv: InstanceType<typeof Ajv04> | undefined;

function instance(): InstanceType<typeof Ajv04> {
  if (ajv) return ajv;
  // strict off: the official schemas use keywords/combinations ajv's strict mode rejects.
  ajv = new Ajv04({ strict: false, allErrors: true });
  for (const file of readdirSync(DIR).sort()) {
    if (!file.endsWith('.json')) continue;
    ajv.addSchema(JSON.parse(readFileSync(join(DIR, file), 'utf8')) as object, file);
  }
  return ajv;
}

/** Errors of `doc` against the official config-schema.json (or state-schema.json); [] when valid. */
export function officialErrors(doc: unknown, schema = 'config-schema.json'): string[] {
  const fn = instance().getSchema(schema);
  if (!fn) throw new Error(`official schema ${schema} not loaded`);
  if (fn(doc)) return [];
  return (fn.errors ?? []).map((e: ErrorObject) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}
