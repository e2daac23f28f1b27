// `strata mount` / `strata umount` as a user runs them: the mount appears at DIR and serves the
// image, `strata umount DIR`, SIGTERM or SIGINT end it, the server exits 0 and nothing is left —
// through the new mount API and through the fusermount3 fallback.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readMountinfo } from '../../src/mount/mountinfo.js';
import { busyboxImage } from '../fixtures/images.js';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
let dir = '';
let env: NodeJS.ProcessEnv = {};

function strata(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function mountsUnder(prefix: string): string[] {
  return readMountinfo()
    .filter((m) => m.mountPoint.startsWith(prefix))
    .map((m) => `${m.mountPoint} ${m.fsType} ${m.source}`);
}

interface Foreground {
  child: ChildProcessWithoutNullStreams;
  line: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; err: string }>;
}

/** Starts `strata mount`, resolves once it says it is mounted. */
async function startMount(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Foreground> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'mount', ...args], {
    env: { ...env, ...extraEnv },
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; err: string }>((r) =>
    child.on('close', (code, signal) => r({ code, signal, err })),
  );
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    void exited.then((e) => reject(new Error(`strata mount exited early (${e.code}): ${e.err}`)));
  });
  return { child, line, exited };
}

function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

test.before(async () => {
  const img = await busyboxImage();
  dir = await mkdtemp(join(tmpdir(), 'strata-cli-mount-'));
  env = { ...process.env, STRATA_ROOT: join(dir, 'root') };
  delete env.STRATA_MOUNT_METHOD;
  const imp = strata('image', 'import', `oci:${img.ociLayout}:latest`, '--name', 'bb');
  assert.is(imp.code, 0, imp.err);
  await mkdir(join(dir, 'mnt'));
});

test.after(async () => {
  const left = mountsUnder(dir);
  await rm(dir, { recursive: true, force: true });
  assert.equal(left, [], 'mounts left');
});

for (const method of ['mount-api', 'fusermount3'] as const) {
  test(`mount serves the image at DIR and \`strata umount DIR\` ends it (${method})`, async () => {
    const mnt = join(dir, 'mnt');
    const fg = await startMount(['bb', mnt], method === 'fusermount3' ? { STRATA_MOUNT_METHOD: method } : {});
    assert.match(
      fg.line,
      new RegExp(`^mounted [0-9a-f]{12} at ${mnt} \\(${method}, passthrough on, pid \\d+\\)$`),
    );
    assert.equal(
      mountsUnder(mnt).map((m) => m.split(' ').slice(0, 2).join(' ')),
      [`${mnt} fuse.strata`],
    );
    assert.match(await readFile(join(mnt, 'etc/passwd'), 'utf8'), /^root:x:0:0:/);
    const um = strata('umount', mnt);
    assert.is(um.code, 0, um.err);
    // The server ends at ENODEV, once the last copy of the mount went: a mount namespace made
    // meanwhile (another test's container, `unshare -m`) holds one until it goes. Wait for the exit.
    const exit = await within(fg.exited, 120_000);
    assert.equal(exit, { code: 0, signal: null, err: '' });
    assert.equal(mountsUnder(mnt), []);
  });
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} unmounts and exits 0 (--no-passthrough)`, async () => {
    const mnt = join(dir, 'mnt');
    const fg = await startMount(['bb', mnt, '--no-passthrough']);
    assert.match(fg.line, /passthrough off/);
    assert.ok((await readFile(join(mnt, 'bin/busybox'))).length > 100_000);
    fg.child.kill(signal);
    // stop's 2 s grace, then the exit: seconds more on a loaded machine.
    assert.equal(await within(fg.exited, 30_000), { code: 0, signal: null, err: '' });
    assert.equal(mountsUnder(mnt), []);
  });
}

test('clear errors: unknown image, a directory that is not a strata mount', async () => {
  const mnt = join(dir, 'mnt');
  const missing = strata('mount', 'nope', mnt);
  assert.is(missing.code, 3);
  assert.is(missing.err, 'strata: no image named "nope"\n');
  const notMount = strata('umount', mnt);
  assert.is(notMount.code, 5);
  assert.is(notMount.err, `strata: ${mnt} is not a strata mount (not a mount point)\n`);
  const tmpfs = strata('umount', '/dev/shm');
  assert.is(tmpfs.code, 5);
  assert.match(tmpfs.err, /is not a strata mount \(a tmpfs mount\)/);
  assert.equal(mountsUnder(dir), []);
});

test.run();
