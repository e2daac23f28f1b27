// Issue 7 item 9: every reader of an image holds a lease for as long as it reads. `image rm` +
// `gc` under a live `strata mount` must not turn its reads into EIO; once it is unmounted (or
// stopped by a signal), gc frees the objects. A mount killed with SIGKILL leaves its lease, and
// the lease says enough (kind, holder, pid, pid start time) for a reconciler to see it is dead.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { holderAlive } from '../../src/store/holder.js';
import { readMountinfo } from '../../src/mount/mountinfo.js';
import { listLeases } from '../../src/store/leases.js';
import { busyboxImage, type TestImage } from '../fixtures/images.js';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const FILES = ['bin/busybox', 'etc/passwd', 'etc/group'];
let dir = '';
let root = '';
let img: TestImage;
let env: NodeJS.ProcessEnv = {};

function strata(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', env });
  assert.is(r.status, 0, `strata ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

interface Foreground {
  child: ChildProcessWithoutNullStreams;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startMount(mnt: string): Promise<Foreground> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'mount', 'bb', mnt], { env });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on('close', (code, signal) => r({ code, signal })),
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('\n') && resolve());
    void exited.then((e) => reject(new Error(`strata mount exited early (${e.code}): ${err}`)));
  });
  return { child, exited };
}

/** Content objects (objects/<2 hex>/<rest>) plus tree indexes in the store. */
async function objectCount(): Promise<number> {
  const objects = join(root, 'objects');
  let n = (await readdir(join(root, 'indexes', 'sha256')).catch(() => [])).length;
  for (const sub of await readdir(objects).catch(() => [])) n += (await readdir(join(objects, sub))).length;
  return n;
}

async function assertReadsMatch(mnt: string, what: string): Promise<void> {
  for (const f of FILES) {
    const got = await readFile(join(mnt, f));
    assert.ok(got.equals(await readFile(join(img.rootfs, f))), `${what}: ${f} has the image's bytes`);
  }
}

test.before(async () => {
  img = await busyboxImage();
  dir = await mkdtemp(join(tmpdir(), 'strata-sec-lease-'));
  root = join(dir, 'root');
  env = { ...process.env, STRATA_ROOT: root };
  delete env.STRATA_MOUNT_METHOD;
  await mkdir(join(dir, 'mnt'));
});

test.after(async () => {
  const left = readMountinfo().filter((m) => m.mountPoint.startsWith(dir));
  await rm(dir, { recursive: true, force: true });
  assert.equal(left, [], 'mounts left');
});

for (const end of ['umount', 'SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  test(`image rm + gc under a mount: reads still right; after ${end}, gc frees the objects`, async () => {
    strata('image', 'import', `oci:${img.ociLayout}:latest`, '--name', 'bb');
    const objects = await objectCount();
    assert.ok(objects > 0);
    const mnt = join(dir, 'mnt');
    const fg = await startMount(mnt);
    const [lease] = await listLeases(root);
    assert.equal(lease.labels, { kind: 'mount', reader: mnt });
    assert.is(lease.holder?.pid, fg.child.pid);
    assert.is(lease.holder?.name, 'strata mount');
    assert.is(holderAlive(lease.holder!), true);
    await readFile(join(mnt, 'bin/busybox')); // one file open and read before, the rest after

    strata('image', 'rm', 'bb');
    strata('gc');
    assert.is(await objectCount(), objects, 'gc kept every object of the leased image');
    await assertReadsMatch(mnt, 'after image rm + gc');

    if (end === 'umount') strata('umount', mnt);
    else fg.child.kill(end);
    assert.equal(await fg.exited, { code: 0, signal: null });
    assert.equal(await listLeases(root), [], 'the lease went with the mount');
    strata('gc');
    assert.is(await objectCount(), 0, 'gc freed the objects once nobody reads them');
  });
}

test('SIGKILL leaves a lease that shows its holder is dead, and gc releases it', async () => {
  strata('image', 'import', `oci:${img.ociLayout}:latest`, '--name', 'bb');
  const mnt = join(dir, 'mnt');
  const fg = await startMount(mnt);
  try {
    fg.child.kill('SIGKILL');
    assert.equal(await fg.exited, { code: null, signal: 'SIGKILL' });
    const [lease] = await listLeases(root);
    assert.is(lease.labels?.kind, 'mount');
    assert.is(lease.holder?.pid, fg.child.pid);
    assert.is(holderAlive(lease.holder!), false);
    strata('image', 'rm', 'bb');
    // gc reconciles: a lease whose holder is gone (store/holder.ts) is released, then swept.
    strata('gc');
    assert.equal(await listLeases(root), [], 'gc released the dead holder’s lease');
    assert.is(await objectCount(), 0);
  } finally {
    // The dead server's mount is ours to remove.
    spawnSync('umount', ['-l', mnt]);
  }
});

test.run();
