// Issue 7 item 4: every temp-and-rename writer, given a directory where someone planted symlinks
// to a file they want overwritten — at the temp names strata used to use (NAME.<pid>.tmp,
// .NAME.<pid>.tmp) and at the destination names — leaves that file untouched and still writes
// its own regular files: the bundle (config.json, hosts, hostname, resolv.conf), the run record
// (state.json) and the hooks.d entries.
import { lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { writeBundle } from '../../src/spec/bundle.js';
import { hooksDConfigs, installHooks } from '../../src/spec/hooks-d.js';
import { statePath } from '../../src/run/paths.js';
import { newContainerId, readRecord, updateRecord, writeRecord } from '../../src/run/record.js';
import { makeEnv, removeEnv, type Env } from '../integration/harness.js';

let env: Env;
let victim: string;
const PRECIOUS = 'root-owned contents\n';

test.before(async () => {
  env = await makeEnv(['busybox']);
  victim = join(env.dir, 'victim');
  writeFileSync(victim, PRECIOUS, { mode: 0o600 });
});
test.after(() => removeEnv(env));

/** Symlinks to the victim at NAME, NAME.<pid>.tmp and .NAME.<pid>.tmp for each name. */
function plant(dir: string, names: string[]): string[] {
  const planted: string[] = [];
  for (const name of names) {
    for (const at of [name, `${name}.${process.pid}.tmp`, `.${name}.${process.pid}.tmp`]) {
      symlinkSync(victim, join(dir, at));
      planted.push(at);
    }
  }
  return planted;
}

function assertRegularFiles(dir: string, names: string[]): void {
  for (const name of names) assert.ok(lstatSync(join(dir, name)).isFile(), `${name} is a regular file`);
  assert.is(readFileSync(victim, 'utf8'), PRECIOUS, 'the planted symlinks’ target is untouched');
}

test('strata bundle: planted symlinks at temp and final names are not written through', async () => {
  const dir = join(env.dir, 'bundle');
  mkdirSync(dir);
  const names = ['config.json', 'hosts', 'hostname', 'resolv.conf'];
  plant(dir, names);
  await writeBundle({
    storeRoot: env.storeRoot,
    image: 'busybox',
    dir,
    run: { command: ['true'] },
    socketPath: '/run/x.sock',
    hookPath: '/opt/strata-hook',
  });
  assertRegularFiles(dir, names);
  assert.match(readFileSync(join(dir, 'config.json'), 'utf8'), '"ociVersion"');
  // Only the planted temp-name symlinks (left alone) and the bundle's own files: no temp file.
  const leftover = readdirSync(dir).filter((n) => !names.includes(n) && n !== 'rootfs');
  assert.ok(
    leftover.every((n) => lstatSync(join(dir, n)).isSymbolicLink()),
    `no temp file left: ${leftover}`,
  );
});

test('run records: writeRecord and updateRecord replace a planted state.json, never its target', () => {
  const runDir = join(env.dir, 'run');
  const id = newContainerId();
  mkdirSync(join(runDir, 'containers', id), { recursive: true, mode: 0o700 });
  plant(join(runDir, 'containers', id), ['state.json']);
  const record = {
    id,
    name: 'planted',
    image: 'busybox',
    imageDigest: `sha256:${'a'.repeat(64)}`,
    runtime: 'runc' as const,
    command: ['true'],
    created: new Date().toISOString(),
    detached: false,
    autoRemove: false,
    stopSignal: 'SIGTERM',
  };
  writeRecord(runDir, record);
  assert.ok(updateRecord(runDir, { ...record, exitCode: 3 }));
  assertRegularFiles(join(runDir, 'containers', id), ['state.json']);
  assert.is(readRecord(runDir, id).exitCode, 3);
  assert.is(lstatSync(statePath(runDir, id)).mode & 0o777, 0o600);
});

test('hooks.d: installHooks replaces planted entries, never their target', () => {
  const dir = join(env.dir, 'hooks.d');
  mkdirSync(dir);
  const names = Object.keys(hooksDConfigs({ hookPath: '/h', socketPath: '/s' }));
  plant(dir, names);
  installHooks(dir, { hookPath: '/h', socketPath: '/s' });
  assertRegularFiles(dir, names);
});

test.run();
