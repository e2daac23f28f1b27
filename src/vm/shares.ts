// `-v HOSTDIR:CTRDIR` for --vm containers: one virtio-fs share per VM, a directory of the VM host
// (<stateDir>/shares) that the guest agent mounts at NATIVE_CONTRACT.vm.guest.sharesDir. For each
// bind mount of a container the host bind-mounts its source into the share (read-only when the
// volume is: the guest cannot write through it whatever it does) under a fresh number and rewrites
// the config's source to the guest's path of it; crun binds it into the container as on a host.
// The VM is booted once, so the share is too: sources come and go as mounts inside it, never as
// devices. qemu reaches the share through virtiofsd (vhost-user); vfkit shares the directory
// itself. docs/architecture.md#vm-guests.
import { spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';

import { NATIVE_CONTRACT } from '../contract/generated/native-contract.js';
import { FailedPreconditionError, InvalidArgumentError, UnavailableError } from '../errors.js';
import { constants, native } from '../native-addon.js';
import type { Mount } from '../schema/generated/runtime-config.js';

export function sharesDir(stateDir: string): string {
  return join(stateDir, 'shares');
}

export function virtiofsdSocket(stateDir: string): string {
  return join(stateDir, 'virtiofs.sock');
}

/** Mount points under `dir` in this mount namespace, deepest first. */
function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  try {
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const mp = line
        .split(' ')[4]
        ?.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
      if (mp && mp.startsWith(`${dir}/`)) out.push(mp);
    }
  } catch {
    // no procfs (macOS): vfkit's shares are plain directories
  }
  return out.sort((a, b) => b.length - a.length);
}

/** Unmounts and removes what a share holds (a host killed with -9 leaves its bind mounts). */
export async function clearShares(stateDir: string): Promise<void> {
  const dir = sharesDir(stateDir);
  for (const mp of mountsUnder(dir)) {
    await native.umount2(mp, constants.MNT_DETACH).catch(() => undefined);
  }
  // Only mount points are in it: a recursive removal must never reach a user's directory through
  // a bind mount that is still there.
  const left = mountsUnder(dir);
  if (left.length > 0) throw new UnavailableError(`cannot unmount ${left.join(', ')}`, { op: 'vm-share' });
  rmSync(dir, { recursive: true, force: true });
}

/** virtiofsd's argv: the C one of qemu 7.2 (-o options) or the Rust one of the virtiofsd package. */
export function virtiofsdArgv(binary: string, dir: string, socket: string): string[] {
  if (binary.endsWith('/libexec/virtiofsd')) {
    return [binary, `--socket-path=${socket}`, `--shared-dir=${dir}`, '--sandbox=chroot', '--cache=auto'];
  }
  // -f: in the foreground (it daemonizes otherwise).
  return [
    binary,
    '-f',
    `--socket-path=${socket}`,
    '-o',
    `source=${dir}`,
    '-o',
    'sandbox=chroot',
    '-o',
    'cache=auto',
  ];
}

/** Starts virtiofsd on `dir` and waits for its socket; it ends when qemu disconnects. */
export async function startVirtiofsd(
  binary: string,
  stateDir: string,
  deadlineMs = 10_000,
): Promise<ChildProcess> {
  const dir = sharesDir(stateDir);
  const socket = virtiofsdSocket(stateDir);
  rmSync(socket, { force: true });
  const argv = virtiofsdArgv(binary, dir, socket);
  const log = openSync(join(stateDir, 'virtiofsd.log'), 'w');
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', log, log] });
  closeSync(log);
  let exited = false;
  child.once('exit', () => (exited = true));
  child.on('error', () => (exited = true));
  const deadline = Date.now() + deadlineMs;
  while (!existsSync(socket)) {
    if (exited)
      throw new UnavailableError(`virtiofsd exited at start (see ${join(stateDir, 'virtiofsd.log')})`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new UnavailableError(`virtiofsd's socket ${socket} never came up`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return child;
}

const isBind = (m: Mount) =>
  m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind');

/** The bind mounts of a config, shared into the VM: their sources rewritten to the guest's paths.
 * `release` unmounts them again. */
export interface SharedMounts {
  mounts: Mount[];
  count: number;
  release(): Promise<void>;
}

let counter = 0;

export function shareMounts(stateDir: string, mounts: Mount[], available: boolean): SharedMounts {
  const dir = sharesDir(stateDir);
  const made: string[] = [];
  const release = async () => {
    for (const p of made.splice(0).reverse()) {
      await native.umount2(p, constants.MNT_DETACH).catch(() => undefined);
      // The mount point alone (an empty directory or file): never recursive, it might still hold
      // the user's files if the unmount failed.
      try {
        if (statSync(p).isDirectory()) rmdirSync(p);
        else unlinkSync(p);
      } catch {
        // gone, or still mounted: clearShares at the VM's stop unmounts what is left
      }
    }
  };
  const out: Mount[] = [];
  try {
    for (const m of mounts) {
      if (!isBind(m) || m.source === undefined) {
        out.push(m);
        continue;
      }
      if (!available) {
        throw new FailedPreconditionError(
          `-v ${m.source}:${m.destination} needs a virtio-fs share, and this VM has none: apt-get install qemu-system-common (virtiofsd)`,
          { op: 'vm-share' },
        );
      }
      if (!m.source.startsWith('/'))
        throw new InvalidArgumentError(`bind source ${m.source} is not an absolute path`, { op: 'vm-share' });
      const isDir = statSync(m.source).isDirectory();
      const name = `${process.pid}-${++counter}`;
      const target = join(dir, name);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (isDir) mkdirSync(target);
      else closeSync(openSync(target, 'wx', 0o600));
      made.push(target);
      const ro = (m.options ?? []).includes('ro');
      const fd = native.openTree(
        constants.AT_FDCWD,
        m.source,
        constants.OPEN_TREE_CLONE | constants.OPEN_TREE_CLOEXEC | constants.AT_RECURSIVE,
      );
      try {
        if (ro) {
          native.mountSetattr(
            fd,
            '',
            constants.AT_EMPTY_PATH | constants.AT_RECURSIVE,
            constants.MOUNT_ATTR_RDONLY,
            0,
          );
        }
        native.moveMount(fd, '', constants.AT_FDCWD, target, constants.MOVE_MOUNT_F_EMPTY_PATH);
      } finally {
        closeSync(fd);
      }
      out.push({ ...m, source: `${NATIVE_CONTRACT.vm.guest.sharesDir}/${name}` });
    }
  } catch (err) {
    void release();
    throw err;
  }
  return { mounts: out, count: made.length, release };
}
