import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { commandProblem } from '../../src/run/command-check.js';
import type { RuntimeConfig } from '../../src/schema/generated/runtime-config.js';
import { encodeTreeIndex, newDir, type TreeNode } from '../../src/store/tree-index-encode.js';
import { TreeIndex } from '../../src/store/tree-index.js';

function file(mode: number): TreeNode {
  return { type: 'file', mode, uid: 0, gid: 0, mtimeSec: 0, size: 1, inline: Buffer.from('x') };
}
function link(target: string): TreeNode {
  return { type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtimeSec: 0, target };
}

// /bin/busybox (0755), /bin/sh -> busybox, /usr/bin (empty), /etc/motd (0644), /app/run.sh (0644).
const root = newDir();
const bin = newDir();
const usr = newDir();
const etc = newDir();
const app = newDir();
root.children!.set('bin', bin).set('usr', usr).set('etc', etc).set('app', app);
bin.children!.set('busybox', file(0o755)).set('sh', link('busybox'));
usr.children!.set('bin', newDir());
etc.children!.set('motd', file(0o644));
app.children!.set('run.sh', file(0o644));
const index = TreeIndex.decode(encodeTreeIndex(root));

function config(args: string[], extra: Partial<RuntimeConfig> = {}): RuntimeConfig {
  return {
    ociVersion: '1.0.2',
    process: { args, cwd: '/app', env: ['PATH=/usr/bin:/bin'], user: { uid: 0, gid: 0 } },
    root: { path: 'rootfs' },
    ...extra,
  } as RuntimeConfig;
}

test('a command found on $PATH, by absolute path, relative to cwd or through a symlink is fine', () => {
  assert.is(commandProblem(index, config(['sh', '-c', 'true'])), undefined);
  assert.is(commandProblem(index, config(['/bin/busybox'])), undefined);
  assert.is(commandProblem(index, config(['../bin/sh'])), undefined);
});

test('a missing command is 127 and names $PATH or the path', () => {
  assert.equal(commandProblem(index, config(['nosuch'])), {
    code: 127,
    message: 'executable file "nosuch" not found in the image\'s $PATH (/usr/bin:/bin)',
  });
  assert.equal(commandProblem(index, config(['/opt/tool'])), {
    code: 127,
    message: 'executable file /opt/tool not found in the image',
  });
});

test('a file without execute bits or a directory is 126', () => {
  assert.equal(commandProblem(index, config(['./run.sh'])), {
    code: 126,
    message: '/app/run.sh in the image is not an executable file',
  });
  assert.is(commandProblem(index, config(['/usr/bin']))?.code, 126);
});

test('a command under a mount (bind, tmpfs, /etc/hosts) cannot be judged from the image', () => {
  const mounts = [{ destination: '/opt', type: 'bind', source: '/srv/tools', options: ['rbind'] }];
  assert.is(commandProblem(index, config(['/opt/tool'], { mounts })), undefined);
  assert.is(
    commandProblem(
      index,
      config(['tool'], {
        mounts,
        process: { args: ['tool'], cwd: '/', env: ['PATH=/opt:/bin'], user: { uid: 0, gid: 0 } },
      }),
    ),
    undefined,
  );
});

test.run();
