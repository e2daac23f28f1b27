// Parity with umoci: for the same image config, the process part of strata's config.json (args,
// env, cwd, uid/gid, additionalGids) equals what `umoci unpack` generates. strata adds two
// variables umoci does not, as podman does: container=strata and HOSTNAME.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRuntimeConfig, type ImageConfigInput } from '../../src/spec/runtime-config.js';
import type { RuntimeConfig } from '../../src/schema/generated/runtime-config.js';
import { officialErrors } from './official-schema.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-umoci-parity-'));
const layout = join(dir, 'oci');
const umoci = (...args: string[]): string =>
  execFileSync('umoci', args, { cwd: dir, stdio: 'pipe' }).toString();

function blob(digest: string): Buffer {
  return readFileSync(join(layout, 'blobs', ...digest.split(':')));
}

function imageConfig(tag: string): ImageConfigInput {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const desc = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!desc) throw new Error(`tag ${tag} not in ${layout}`);
  const manifest = JSON.parse(blob(desc.digest).toString()) as { config: { digest: string } };
  return JSON.parse(blob(manifest.config.digest).toString()) as ImageConfigInput;
}

function parity(tag: string, configArgs: string[]): void {
  umoci('config', '--image', `oci:base`, '--tag', tag, ...configArgs);
  const bundle = join(dir, `bundle-${tag}`);
  umoci('unpack', '--image', `oci:${tag}`, bundle);
  const theirs = (JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as RuntimeConfig).process!;
  const rootfs = join(bundle, 'rootfs');
  const lookup = (p: string): Buffer | undefined =>
    existsSync(join(rootfs, p)) ? readFileSync(join(rootfs, p)) : undefined;
  // umoci always writes terminal: true, hence TERM=xterm: compare with a tty.
  const ours = buildRuntimeConfig(imageConfig(tag), { tty: true, hostEnv: {}, hostname: 'h' }, lookup);
  assert.equal(officialErrors(ours), []);
  const p = ours.process!;
  assert.equal(p.args, theirs.args, `${tag}: args`);
  assert.is(p.cwd, theirs.cwd, `${tag}: cwd`);
  assert.is(p.user?.uid, theirs.user?.uid, `${tag}: uid`);
  assert.is(p.user?.gid, theirs.user?.gid, `${tag}: gid`);
  assert.equal(p.user?.additionalGids ?? [], theirs.user?.additionalGids ?? [], `${tag}: additionalGids`);
  const strataOnly = (e: string): boolean => e === 'container=strata' || e === 'HOSTNAME=h';
  assert.equal(
    [...(p.env ?? [])].filter((e) => !strataOnly(e)).sort(),
    [...(theirs.env ?? [])].sort(),
    `${tag}: env`,
  );
}

test('setup: an OCI image with /etc/passwd and /etc/group, made with umoci', () => {
  umoci('init', '--layout', layout);
  umoci('new', '--image', `${layout}:base`);
  const b = join(dir, 'base-bundle');
  umoci('unpack', '--image', `${layout}:base`, b);
  execFileSync('mkdir', ['-p', join(b, 'rootfs/etc'), join(b, 'rootfs/bin')]);
  writeFileSync(
    join(b, 'rootfs/etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\nsvc:x:998:998:svc:/var/svc:/bin/false\n',
  );
  writeFileSync(
    join(b, 'rootfs/etc/group'),
    'root:x:0:\nbob:x:1000:\nwheel:x:10:bob,svc\naudio:x:29:bob\nsvc:x:998:\n',
  );
  umoci('repack', '--image', `${layout}:base`, b);
});

test('entrypoint + cmd, env with PATH override, workdir, user by name with groups', () => {
  parity('named', [
    '--config.entrypoint',
    '/bin/busybox',
    '--config.cmd',
    'id',
    '--config.cmd',
    '-a',
    '--config.env',
    'FOO=bar',
    '--config.env',
    'PATH=/x:/y',
    '--config.workingdir',
    '/srv',
    '--config.user',
    'bob',
  ]);
});

test('cmd only, no env, default workdir, root', () => {
  parity('plain', ['--config.cmd', '/bin/sh', '--config.user', 'root']);
});

test('user:group by names', () => {
  parity('usergroup', ['--config.cmd', '/bin/sh', '--config.user', 'bob:wheel']);
});

test('numeric uid listed in passwd, and uid:gid', () => {
  parity('numeric', ['--config.cmd', '/bin/sh', '--config.user', '998']);
  parity('uidgid', ['--config.cmd', '/bin/sh', '--config.user', '1000:29']);
});

test('numeric uid absent from passwd: gid 0, no HOME', () => {
  parity('unknown', ['--config.cmd', '/bin/sh', '--config.user', '4242', '--config.env', 'HOME=/custom']);
  parity('unknown2', ['--config.cmd', '/bin/sh', '--config.user', '4242:77']);
});

test('cleanup: the temp dir is gone', () => {
  rmSync(dir, { recursive: true, force: true });
  assert.not.ok(existsSync(dir));
});

test.run();
