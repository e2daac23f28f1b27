// podman's hooks.d entries for strata (format in INTEGRATIONS.md). The hook executable takes its
// stage as argv[1], so each stage gets its own file; all three trigger on the org.strata.image
// annotation, so only containers that name a strata image run them.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { IMAGE_ANNOTATION } from '../src/spec/annotations.js';
import type { HooksDConfig } from '../src/spec/generated/hooks-d.js';
import { writeFileAtomicSync } from '../src/store/atomic.js';
import { validate } from '../src/spec/validate.js';

export const HOOK_STAGES = ['createRuntime', 'createContainer', 'poststop'] as const;
/** Debian's podman reads only this directory unless given --hooks-dir. */
export const DEFAULT_HOOKS_DIR = '/usr/share/containers/oci/hooks.d';

export interface HookSetup {
  /** Absolute path of strata-hook. */
  hookPath: string;
  socketPath: string;
  /** createRuntime starts the daemon with this argv when none answers. */
  daemonArgv?: string[];
  /** Seconds; the runtime kills a hook that takes longer. */
  timeout?: number;
}

/** Hook `args` for one stage: argv[0], the stage, and for createRuntime the daemon argv. */
export function hookArgs(stage: (typeof HOOK_STAGES)[number], daemonArgv: string[] = []): string[] {
  return ['strata-hook', stage, ...(stage === 'createRuntime' ? daemonArgv : [])];
}

export function hooksDConfigs(setup: HookSetup): Record<string, HooksDConfig> {
  const out: Record<string, HooksDConfig> = {};
  for (const stage of HOOK_STAGES) {
    const config: HooksDConfig = {
      version: '1.0.0',
      hook: {
        path: setup.hookPath,
        args: hookArgs(stage, setup.daemonArgv),
        env: [`STRATA_SOCKET=${setup.socketPath}`],
        timeout: setup.timeout ?? 30,
      },
      when: { annotations: { [`^${IMAGE_ANNOTATION.replace(/\./g, '\\.')}$`]: '.+' } },
      stages: [stage],
    };
    out[`strata-${stage.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}.json`] = validate<HooksDConfig>(
      'hooks-d',
      config,
      `hooks.d entry for ${stage}`,
    );
  }
  return out;
}

/** Writes the entries into dir (atomically, each replacing an older one); returns their paths. */
export function installHooks(dir: string, setup: HookSetup): string[] {
  mkdirSync(dir, { recursive: true });
  return Object.entries(hooksDConfigs(setup)).map(([name, config]) => {
    const path = join(dir, name);
    writeFileAtomicSync(path, JSON.stringify(config, null, 2) + '\n', { mode: 0o644 });
    return path;
  });
}
