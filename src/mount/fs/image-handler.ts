// createImageHandler: what session.ts serves for one mount of one image.
import { FuseProtocol, type BackingCapability } from '../fuse/protocol.js';
import type { TreeIndex } from '../../store/tree-index.js';
import { FilesystemBridge } from './bridge.js';
import type { FdCache } from './fd-cache.js';
import { ImageFilesystem } from './image-fs.js';
import type { PlaceholderSpec } from './placeholders.js';

export interface ImageHandlerOptions {
  index: TreeIndex;
  storeRoot: string;
  placeholders?: PlaceholderSpec[];
  /** FUSE_DEV_IOC_BACKING_OPEN/CLOSE on this session's /dev/fuse fd: enables passthrough. */
  backing?: BackingCapability;
  /** Defaults to the process-wide cache shared by every mount. */
  fdCache?: FdCache;
  /** Seconds; default 86400 (the image never changes). */
  entryTimeout?: number;
  attrTimeout?: number;
}

export function createImageHandler(options: ImageHandlerOptions): FuseProtocol {
  const fs = new ImageFilesystem(options);
  const bridge = new FilesystemBridge(fs, options);
  return new FuseProtocol(bridge, { backing: options.backing });
}
