// podman's hooks.d entries for strata (format: docs/architecture.md#host-facts). The hook binary takes its
// stage as argv[1], so each stage gets its own file; all three trigger on the org.strata.image
// annotation, so only containers that name a strata image run them.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { IMAGE_ANNOTATION } from './annotations.js';
import type { HooksDConfig } from '../schema/generated/hooks-d.js';
import { writeFileAtomicSync } from '../store/atomic.js';
import { validate } from '../schema/validate.js';
import { HOOK_STAGES, strataHook, type HookSetup } from './hook-injection.js';

/** Debian's podman reads only this directory unless given --hooks-dir. */
export const DEFAULT_HOOKS_DIR = '/usr/share/containers/oci/hooks.d';

export function hooksDConfigs(setup: HookSetup): Record<string, HooksDConfig> {
  const out: Record<string, HooksDConfig> = {};
  for (const stage of HOOK_STAGES) {
    const config: HooksDConfig = {
      version: '1.0.0',
      hook: strataHook(stage, setup),
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
