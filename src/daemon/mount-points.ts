// The daemon's containers and the VM host (src/vm/host.ts) both need placeholders for a config's
// mount destinations: the function lives in src/mount/mount-points.ts, below both.
export { placeholdersFor, type IsDirectory } from '../mount/mount-points.js';
