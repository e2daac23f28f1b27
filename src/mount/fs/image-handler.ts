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
  /** The index's file, for reading inline contents without keeping them mapped (see ImageFilesystem). */
  indexPath?: string;
  placeholders?: PlaceholderSpec[];
  /** FUSE_DEV_IOC_BACKING_OPEN/CLOSE on this session's /dev/fuse fd: enables passthrough. */
  backing?: BackingCapability;
  /** Told of every passthrough backing id made and closed (FilesystemBridge). */
  onBacking?: (ino: number, id: number, open: boolean) => void;
  /** Defaults to the process-wide cache shared by every mount. */
  fdCache?: FdCache;
  /** Seconds; default 86400 (the image never changes). */
  entryTimeout?: number;
  attrTimeout?: number;
  /** Largest READ the kernel sends, in pages (default IMAGE_MAX_PAGES). */
  maxPages?: number;
}

/**
 * 256 pages = 1 MiB READs, the protocol's largest (issue 3: large reads). Without passthrough
 * each READ in flight holds a reply buffer of its size; 64 pages (256 KiB) measured about 3 MiB
 * less worst-case RSS without passthrough and no slower, but with passthrough — the default — the
 * kernel reads object files itself and the READ size costs the server nothing.
 */
export const IMAGE_MAX_PAGES = 256;

export function createImageHandler(options: ImageHandlerOptions): FuseProtocol {
  const fs = new ImageFilesystem(options);
  const bridge = new FilesystemBridge(fs, options);
  return new FuseProtocol(bridge, {
    backing: options.backing,
    maxPages: options.maxPages ?? IMAGE_MAX_PAGES,
  });
}
