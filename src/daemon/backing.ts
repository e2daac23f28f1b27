// FUSE passthrough for the daemon's mounts: backing ids are registered on the session's
// /dev/fuse fd, which exists only once the mount is made, after the handler was built.
import { native } from '../native-addon.js';
import type { BackingCapability } from '../mount/fuse/protocol.js';

export class DeviceBacking implements BackingCapability {
  devFd = -1;

  open(fd: number): number {
    // The bridge takes a throw as "no passthrough for this file" and serves the reads itself.
    if (this.devFd < 0) throw new Error('passthrough backing used before the device was bound');
    return native.fuseBackingOpen(this.devFd, fd);
  }

  close(id: number): void {
    if (this.devFd >= 0) native.fuseBackingClose(this.devFd, id);
  }
}
