// Issue 7 item 2: `strata mount` puts an untrusted image into the host's mount namespace. A
// setuid-root file in it must not give a local user euid 0, a device node in it must not open,
// and other users get in only with --allow-other. The test builds such an image itself: a copy of
// id(1) that is setuid root, and a world-writable /dev/zero (char 1:5).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { readMountinfo } from '../../src/mount/mountinfo.js';
import { run } from '../fixtures/run.js';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
let dir = '';
let env: NodeJS.ProcessEnv = {};

function strata(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Runs argv as uid/gid 65534 with no supplementary groups. */
function asNobody(...argv: string[]) {
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...argv], {
    encoding: 'utf8',
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function buildHostileImage(): Promise<string> {
  const rootfs = join(dir, 'rootfs');
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await mkdir(join(rootfs, 'dev'));
  await copyFile('/usr/bin/id', join(rootfs, 'bin/id'));
  await chmod(join(rootfs, 'bin/id'), 0o4755);
  await run('mknod', ['-m', '0666', join(rootfs, 'dev/zero'), 'c', '1', '5']);
  const layer = join(dir, 'layer.tar');
  await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', layer, '.']);
  const layout = join(dir, 'oci');
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', `${layout}:latest`]);
  await run('umoci', ['raw', 'add-layer', '--image', `${layout}:latest`, layer]);
  return layout;
}

interface Foreground {
  child: ChildProcessWithoutNullStreams;
  exited: Promise<number | null>;
}

async function startMount(args: string[], method: string): Promise<Foreground> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'mount', ...args], {
    env: { ...env, STRATA_MOUNT_METHOD: method },
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('\n') && resolve());
    void exited.then((code) => reject(new Error(`strata mount exited early (${code}): ${err}`)));
  });
  return { child, exited };
}

/** Per-mount and superblock options of the top mount at `mnt`. */
function optionsAt(mnt: string): { mount: string[]; superblock: string[] } {
  const line = spawnSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => l.split(' ')[4] === mnt)
    .at(-1);
  assert.ok(line, `a mount at ${mnt}`);
  const fields = line.split(' ');
  return { mount: fields[5].split(','), superblock: fields[fields.indexOf('-') + 3].split(',') };
}

function openError(path: string): string | undefined {
  try {
    openSync(path, 'r');
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
}

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-sec-mount-'));
  await chmod(dir, 0o755); // so that only the mount itself can keep uid 65534 out
  env = { ...process.env, STRATA_ROOT: join(dir, 'root') };
  delete env.STRATA_MOUNT_METHOD;
  const layout = await buildHostileImage();
  const imp = strata('image', 'import', `oci:${layout}:latest`, '--name', 'hostile');
  assert.is(imp.code, 0, imp.err);
  await mkdir(join(dir, 'mnt'));
  await chmod(join(dir, 'mnt'), 0o755);
});

test.after(async () => {
  const left = readMountinfo().filter((m) => m.mountPoint.startsWith(dir));
  await rm(dir, { recursive: true, force: true });
  assert.equal(left, [], 'mounts left');
});

for (const method of ['mount-api', 'fusermount3']) {
  test(`default: nosuid,nodev, no allow_other; another user cannot get in (${method})`, async () => {
    const mnt = join(dir, 'mnt');
    const fg = await startMount(['hostile', mnt], method);
    try {
      const opts = optionsAt(mnt);
      assert.ok(opts.mount.includes('nosuid'), `nosuid in ${opts.mount}`);
      assert.ok(opts.mount.includes('nodev'), `nodev in ${opts.mount}`);
      assert.not.ok(opts.superblock.includes('allow_other'), `no allow_other in ${opts.superblock}`);
      // The hostile content is really there: the mount honours neither of them.
      const id = await stat(join(mnt, 'bin/id'));
      assert.is(id.mode & 0o7777, 0o4755);
      assert.is(id.uid, 0);
      assert.ok((await stat(join(mnt, 'dev/zero'))).isCharacterDevice());
      assert.is(openError(join(mnt, 'dev/zero')), 'EACCES', 'nodev: not even root opens the device');
      const denied = asNobody('ls', mnt);
      assert.is.not(denied.code, 0, 'uid 65534 is kept out');
      assert.match(denied.err, /Permission denied/);
      const euid = asNobody(join(mnt, 'bin/id'), '-u');
      assert.is.not(euid.code, 0);
    } finally {
      fg.child.kill('SIGTERM');
    }
    assert.is(await fg.exited, 0);
  });

  test(`--allow-other lets another user read, still nosuid,nodev (${method})`, async () => {
    const mnt = join(dir, 'mnt');
    const fg = await startMount(['hostile', mnt, '--allow-other'], method);
    try {
      const opts = optionsAt(mnt);
      assert.ok(opts.superblock.includes('allow_other'), `allow_other in ${opts.superblock}`);
      assert.ok(opts.mount.includes('nosuid') && opts.mount.includes('nodev'), `${opts.mount}`);
      assert.is(asNobody('ls', join(mnt, 'bin')).out, 'id\n');
      const euid = asNobody(join(mnt, 'bin/id'), '-u');
      assert.is(euid.code, 0, euid.err);
      assert.is(euid.out, '65534\n', 'the setuid bit gives no euid 0');
      const dev = asNobody('head', '-c', '1', join(mnt, 'dev/zero'));
      assert.is.not(dev.code, 0, 'the device node does not open');
      assert.match(dev.err, /Permission denied/);
      assert.is(openError(join(mnt, 'dev/zero')), 'EACCES');
    } finally {
      fg.child.kill('SIGTERM');
    }
    assert.is(await fg.exited, 0);
  });
}

test.run();
