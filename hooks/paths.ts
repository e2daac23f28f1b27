// Where the hook executable and the strata CLI live, as absolute paths: hooks run with no PATH
// and only the env their entry declares (INTEGRATIONS.md), and the createRuntime hook starts the
// daemon from an argv it is given.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { NotFoundError } from '../src/store/errors.js';

function firstExisting(rels: string[]): string | undefined {
  return rels.map((rel) => fileURLToPath(new URL(rel, import.meta.url))).find((p) => existsSync(p));
}

/** native/build/Release/strata-hook, built by `npm install` (node-gyp target strata-hook). */
export function hookExecutable(): string {
  // From hooks/ (tsx) or dist/hooks/ (compiled).
  const path = firstExisting([
    '../native/build/Release/strata-hook',
    '../../native/build/Release/strata-hook',
  ]);
  if (!path) {
    throw new NotFoundError(
      'the hook executable native/build/Release/strata-hook is not built; run `npm install`',
      {
        op: 'hook-path',
      },
    );
  }
  return path;
}

/**
 * The argv that starts the CLI with `args`: node and the compiled main.js, or, when running from
 * sources (tests), node with tsx's loader and main.ts.
 */
export function cliArgv(args: string[]): string[] {
  const js = firstExisting(['../src/cli/main.js', '../../src/cli/main.js']);
  if (js) return [process.execPath, js, ...args];
  const ts = firstExisting(['../src/cli/main.ts']);
  if (!ts) throw new NotFoundError('cannot find the strata CLI (src/cli/main.js)', { op: 'cli-path' });
  return [process.execPath, '--import', import.meta.resolve('tsx'), ts, ...args];
}

export interface DaemonLocation {
  storeRoot: string;
  socketPath: string;
  logFile?: string;
}

/** What the createRuntime hook runs when no daemon answers. */
export function daemonArgv(loc: DaemonLocation): string[] {
  const extra = loc.logFile ? ['--log-file', loc.logFile] : [];
  return cliArgv(['daemon', '--root', loc.storeRoot, '--socket', loc.socketPath, ...extra]);
}
