// Why a container's command could not be executed, told from the image itself. crun and runc say
// it on stderr and exit 1 like any other failure; podman turns it into 127 (not found) or 126
// (found, not executable), which scripts rely on. strata asks this only after the runtime failed
// before the container started, so a wrong guess can never stop a container from running.
import { posix } from 'node:path';

import { resolveInImage } from '../store/image-file.js';
import type { RuntimeConfig } from '../schema/generated/runtime-config.js';
import { S_IFMT, S_IFREG } from '../store/tree-index-format.js';
import type { TreeIndex } from '../store/tree-index.js';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface CommandProblem {
  code: 126 | 127;
  message: string;
}

function underMount(path: string, config: RuntimeConfig): boolean {
  return (config.mounts ?? []).some((m) => path === m.destination || path.startsWith(`${m.destination}/`));
}

/** The problem with config.process.args[0] in this image, or undefined (fine, or cannot tell). */
export function commandProblem(index: TreeIndex, config: RuntimeConfig): CommandProblem | undefined {
  const command = config.process?.args?.[0];
  if (!command) return undefined;
  const cwd = config.process?.cwd ?? '/';
  const pathVar = config.process?.env?.find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;
  const candidates = command.includes('/')
    ? [posix.resolve(cwd, command)]
    : pathVar
        .split(':')
        .filter((d) => d.startsWith('/'))
        .map((d) => posix.join(d, command));
  let notExecutable: string | undefined;
  for (const path of candidates) {
    // A bind mount or tmpfs may provide it: only the runtime knows.
    if (underMount(path, config)) return undefined;
    const ino = resolveInImage(index, path);
    if (ino === 0) continue;
    const mode = index.mode(ino);
    if ((mode & S_IFMT) === S_IFREG && (mode & 0o111) !== 0) return undefined;
    notExecutable ??= path;
  }
  if (notExecutable) return { code: 126, message: `${notExecutable} in the image is not an executable file` };
  return {
    code: 127,
    message: command.includes('/')
      ? `executable file ${command} not found in the image`
      : `executable file "${command}" not found in the image's $PATH (${pathVar})`,
  };
}
