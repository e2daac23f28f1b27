// The hook executable (native/hook/strata-hook.c) run for real, one test per exit code it can
// end with: against no socket, a scripted daemon (a node:net server answering what the test
// says, with SCM_RIGHTS where needed), and the real daemon in-process for a missing image.
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test as uvuTest } from 'uvu';
import * as assert from 'uvu/assert';

import { writeBundle } from '../../src/spec/bundle.js';
import { hookExecutable } from '../../src/executables.js';
import { NATIVE_CONTRACT } from '../../src/contract/generated/native-contract.js';
import { ContainerManager } from '../../src/daemon/containers.js';
import { HOOK_EXIT } from '../../src/daemon/hook-protocol.js';
import { openLog } from '../../src/daemon/log.js';
import { listenDaemon, socketFd } from '../../src/daemon/server.js';
import { native } from '../../src/native-addon.js';
import { listLeases } from '../../src/store/leases.js';
import { makeEnv, removeEnv, testDaemonStatus } from '../integration/harness.js';
import { checkedTest } from '../fixtures/checked-test.js';
import { fdSnapshot, fdsLeftSince, waitFor } from './mini-fuse.js';

// Every test ends with no fd left open (checked inside the test, so a failure is never lost).
const test = checkedTest(uvuTest, fdSnapshot, async (fds) => {
  await waitFor(() => fdsLeftSince(fds).length === 0, 10_000);
  assert.equal(fdsLeftSince(fds), [], 'no fd left open');
});

const scratch = mkdtempSync(join(tmpdir(), 'strata-hook-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

interface HookRun {
  status: number | null;
  stderr: string;
}

/** Runs the hook with `args` and a state for container `id` on stdin. */
function hook(
  args: string[],
  socketPath: string,
  env: Record<string, string> = {},
  id = 'c1',
): Promise<HookRun> {
  const state = JSON.stringify({ ociVersion: '1.0.2', id, status: 'creating', pid: 1, bundle: scratch });
  return new Promise((resolve) => {
    const child = spawn(hookExecutable(), args, {
      env: { STRATA_SOCKET: socketPath, ...env },
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.on('error', () => {}); // the hook may exit before reading (usage)
    child.stdin.end(state);
    const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stderr });
    });
  });
}

/** A daemon that answers every hook connection with `answer` (once it has the whole request). */
async function withScriptedDaemon(
  answer: (socket: Socket, request: string) => void,
  body: (socketPath: string, requests: string[]) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(scratch, 'd-'));
  const socketPath = join(dir, 's.sock');
  const requests: string[] = [];
  const open = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => {});
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('end', () => {
      requests.push(data);
      answer(socket, data);
    });
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  try {
    await body(socketPath, requests);
  } finally {
    for (const s of open) s.destroy();
    await new Promise((r) => server.close(r));
  }
}

test('usage: no stage, or an unknown one, is exit 2', async () => {
  let r = await hook([], join(scratch, 'none.sock'));
  assert.is(r.status, HOOK_EXIT.usage);
  assert.match(r.stderr, 'usage: strata-hook createRuntime|createContainer|poststop');
  r = await hook(['prestart'], join(scratch, 'none.sock'));
  assert.is(r.status, HOOK_EXIT.usage);
  assert.match(r.stderr, 'unknown stage (want createRuntime, createContainer or poststop)');
});

test('no daemon at the socket: exit 3 naming the socket; poststop still succeeds', async () => {
  const missing = join(scratch, 'none.sock');
  const r = await hook(['createRuntime'], missing);
  assert.is(r.status, HOOK_EXIT.unreachable);
  assert.match(r.stderr, `strata-hook createRuntime: cannot reach the strata daemon at ${missing}`);
  assert.is((await hook(['poststop'], missing)).status, 0);
});

test('a daemon that drops every request unanswered: exit 3 after the retries', async () => {
  await withScriptedDaemon(
    (socket) => socket.destroy(),
    async (socketPath, requests) => {
      const r = await hook(['createContainer'], socketPath);
      assert.is(r.status, HOOK_EXIT.unreachable);
      assert.match(r.stderr, `the daemon at ${socketPath} closed the connection without answering`);
      assert.is(requests.length, 5, 'asked again before giving up');
      assert.match(requests[0], /^STRATA-HOOK 1 createContainer\n\{"ociVersion"/);
    },
  );
});

test('a daemon that never answers: exit 4 once the wait ($STRATA_HOOK_TIMEOUT_MS) runs out', async () => {
  await withScriptedDaemon(
    () => {}, // holds the connection, says nothing
    async (socketPath) => {
      const t0 = Date.now();
      const r = await hook(['createRuntime'], socketPath, { [NATIVE_CONTRACT.hook.timeoutEnv]: '300' });
      assert.is(r.status, HOOK_EXIT.timeout);
      assert.match(r.stderr, `the daemon at ${socketPath} did not answer within 300 ms`);
      assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
    },
  );
});

test('a daemon started on demand that never reports ready: exit 4', async () => {
  const pidFile = join(scratch, 'daemon.pid');
  const daemon = ['/bin/sh', '-c', `echo $$ > ${pidFile}; exec sleep 30`];
  const r = await hook(['createRuntime', ...daemon], join(scratch, 'none.sock'), {
    [NATIVE_CONTRACT.hook.timeoutEnv]: '300',
  });
  assert.ok(
    await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', 2000),
    'the daemon ran',
  );
  process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
  assert.is(r.status, HOOK_EXIT.timeout);
  assert.match(r.stderr, 'the daemon (/bin/sh) did not report ready within 300 ms');
});

test('a refusal exits with the code the daemon names (1 when it names none or a bad one)', async () => {
  for (const [answer, code] of [
    ['error the image is gone\nexit 5\n', 5],
    ['error no root prepared\n', 1],
    ['error strange\nexit 200\n', 1],
  ] as const) {
    await withScriptedDaemon(
      (socket) => socket.end(answer),
      async (socketPath) => {
        const r = await hook(['createRuntime'], socketPath);
        assert.is(r.status, code, answer);
        assert.is(r.stderr, `strata-hook createRuntime: ${answer.split('\n')[0].slice(6)}\n`);
      },
    );
  }
});

test('a reply that makes no sense: exit 7 (garbage, or createContainer without a mount)', async () => {
  await withScriptedDaemon(
    (socket) => socket.end('what\n'),
    async (socketPath) => {
      const r = await hook(['poststop'], socketPath);
      assert.is(r.status, HOOK_EXIT.badReply);
      assert.match(r.stderr, 'unexpected reply from the daemon');
    },
  );
  await withScriptedDaemon(
    (socket) => socket.end(`ok\nrootfs ${scratch}\n`),
    async (socketPath) => {
      const r = await hook(['createContainer'], socketPath);
      assert.is(r.status, HOOK_EXIT.badReply);
      assert.match(r.stderr, 'the daemon sent no mount for this container');
    },
  );
});

test('a mount that cannot be attached: exit 6 (the rootfs is not a mount here)', async () => {
  // Nothing is moved: the hook stops at finding no mount at the rootfs path.
  await withScriptedDaemon(
    (socket) => {
      const devNull = openSync('/dev/null', 'r');
      try {
        native.sendFds(socketFd(socket), Buffer.from(`ok\nrootfs ${scratch}\n`), [devNull]);
      } finally {
        closeSync(devNull);
      }
      socket.end();
    },
    async (socketPath) => {
      const r = await hook(['createContainer'], socketPath);
      assert.is(r.status, HOOK_EXIT.attachFailed);
      assert.match(r.stderr, `no mount at the rootfs ${scratch} in this mount namespace`);
    },
  );
});

/** The mounts under `root` in the mount namespace that ran `script`, as "path source fstype" lines. */
function mountsAfter(script: string, root: string, env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-euc', script], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (status) => {
      if (status !== 0) reject(new Error(`attach script failed (${status}): ${err}`));
      // mountinfo: id parent dev root mountpoint opts ... - fstype source superopts
      const lines = out
        .split('\n')
        .map((l) => l.split(' '))
        .filter((f) => f[4]?.startsWith(root))
        .map((f) => {
          const dash = f.indexOf('-');
          return `${f[4].slice(root.length) || '/'} ${f[dash + 2]} ${f[dash + 1]}`;
        });
      resolve(lines.join('\n'));
    });
  });
}

test("attach: the image goes under the runtime's mounts, nested ones kept (listmount and mountinfo alike)", async () => {
  const image = mkdtempSync(join(scratch, 'img-'));
  for (const d of ['a', 'b', 'c', 'with space']) mkdirSync(join(image, d));
  writeFileSync(join(image, 'c', 'f'), '');
  writeFileSync(join(image, 'marker'), 'image');
  const root = mkdtempSync(join(scratch, 'rootfs-'));
  // What a runtime leaves before createContainer: the rootfs a mount point, mounts under it (one
  // nested, one on a file, one with a space in its path), a hook to attach the image over it.
  const script = `
    mount -t tmpfs rootfs "$R"
    mkdir "$R/a" "$R/b" "$R/c" "$R/with space"
    touch "$R/c/f"
    mount -t tmpfs ta "$R/a"
    mount -t tmpfs tb "$R/b"
    mkdir "$R/b/x"
    mount -t tmpfs tbx "$R/b/x"
    mount --bind /dev/null "$R/c/f"
    mount -t tmpfs tsp "$R/with space"
    echo '{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":1,"bundle":"/"}' | "$HOOK" createContainer
    test "$(cat "$R/marker")" = image
    cat /proc/self/mountinfo`;
  const results: string[] = [];
  for (const force of ['0', '1']) {
    const mount = native.openTree(
      native.constants.AT_FDCWD,
      image,
      native.constants.OPEN_TREE_CLONE | native.constants.OPEN_TREE_CLOEXEC,
    );
    try {
      await withScriptedDaemon(
        (socket) => {
          native.sendFds(socketFd(socket), Buffer.from(`ok\nrootfs ${root}\n`), [mount]);
          socket.end();
        },
        async (socketPath) => {
          results.push(
            await mountsAfter(script, root, {
              R: root,
              HOOK: hookExecutable(),
              STRATA_SOCKET: socketPath,
              STRATA_ATTACH_MOUNTINFO: force,
            }),
          );
        },
      );
    } finally {
      closeSync(mount);
    }
  }
  const [listmount, mountinfo] = results;
  for (const want of ['/a ta tmpfs', '/b tb tmpfs', '/b/x tbx tmpfs', '/with\\040space tsp tmpfs']) {
    assert.ok(listmount.split('\n').includes(want), `${want} in:\n${listmount}`);
  }
  assert.match(listmount, /^\/c\/f /m);
  assert.is(listmount, mountinfo, 'the same mounts on both paths');
});

test('the real daemon: an image missing from the store is exit 5, other refusals 1', async () => {
  const env = await makeEnv(['busybox']);
  const logger = openLog(env.logFile, false);
  const manager = new ContainerManager({ storeRoot: env.storeRoot, logger, prepareTimeoutMs: 5000 });
  const status = testDaemonStatus(env, manager);
  const server = await listenDaemon({
    socketPath: env.socket,
    storeRoot: env.storeRoot,
    manager,
    logger,
    status,
  });
  try {
    const bundle = join(env.dir, 'bundle');
    await writeBundle({
      storeRoot: env.storeRoot,
      image: 'busybox',
      dir: bundle,
      run: {},
      socketPath: env.socket,
      hookPath: hookExecutable(),
    });
    const configPath = join(bundle, 'config.json');
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as { annotations: Record<string, string> };
    const missing = `sha256:${'0'.repeat(64)}`;
    config.annotations['org.strata.image'] = missing;
    writeFileSync(configPath, JSON.stringify(config));
    const state = (id: string) =>
      JSON.stringify({ ociVersion: '1.0.2', id, status: 'creating', pid: process.pid, bundle });
    const run = (stage: string, id: string) =>
      new Promise<HookRun>((resolve) => {
        const child = spawn(hookExecutable(), [stage], {
          env: { STRATA_SOCKET: env.socket },
          stdio: ['pipe', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('close', (code) => resolve({ status: code, stderr }));
        child.stdin.end(state(id));
      });

    let r = await run('createRuntime', 'gone');
    assert.is(r.status, HOOK_EXIT.imageMissing, r.stderr);
    assert.match(r.stderr, `image ${missing}`);
    assert.match(r.stderr, 'strata image import');
    assert.equal(await listLeases(env.storeRoot), [], 'nothing held');

    r = await run('createContainer', 'never');
    assert.is(r.status, HOOK_EXIT.failed, r.stderr);
    assert.match(r.stderr, 'no root prepared for container never');
  } finally {
    await server.close();
    await manager.releaseAll('test done');
    removeEnv(env);
  }
});

test.run();
