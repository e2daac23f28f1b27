// The strata hooks in an OCI config.json: the hook executable at each stage, talking to the daemon
// over the socket in its env. `strata bundle` and `strata run` inject them into a config they
// synthesize (bundle.ts); a runtime wrapper or shim handed someone else's config.json (podman's,
// containerd's) injects only them. podman's hooks.d entries (hooks-d.ts) carry the same hooks.
import type { Hook, Hooks, RuntimeConfig } from '../schema/generated/runtime-config.js';

export const HOOK_STAGES = ['createRuntime', 'createContainer', 'poststop'] as const;
export type HookStage = (typeof HOOK_STAGES)[number];

export interface HookSetup {
  /** Absolute path of strata-hook. */
  hookPath: string;
  socketPath: string;
  /** createRuntime starts the daemon with this argv when none answers. */
  daemonArgv?: string[];
  /** Seconds; the runtime kills a hook that takes longer. Default 30. */
  timeout?: number;
}

/** Hook `args` for one stage: argv[0], the stage, and for createRuntime the daemon argv. */
export function hookArgs(stage: HookStage, daemonArgv: string[] = []): string[] {
  return ['strata-hook', stage, ...(stage === 'createRuntime' ? daemonArgv : [])];
}

/** The one hook entry of a stage. */
export function strataHook(stage: HookStage, setup: HookSetup): Hook {
  return {
    path: setup.hookPath,
    args: hookArgs(stage, setup.daemonArgv),
    env: [`STRATA_SOCKET=${setup.socketPath}`],
    timeout: setup.timeout ?? 30,
  };
}

/** `hooks` with each of `stages` set to the strata hook alone; other stages kept as they are. */
export function withStrataHooks(
  hooks: Hooks | undefined,
  setup: HookSetup,
  stages: readonly HookStage[] = HOOK_STAGES,
): Hooks {
  const out: Hooks = { ...hooks };
  for (const stage of stages) out[stage] = [strataHook(stage, setup)];
  return out;
}

/**
 * `hooks` with the strata hook first at `stage` and the hooks already there after it (someone
 * else's config.json: strata-runtime keeps podman's own hooks), once even if called again.
 */
export function withStrataHookFirst(hooks: Hooks | undefined, setup: HookSetup, stage: HookStage): Hooks {
  const others = (hooks?.[stage] ?? []).filter((h) => h.path !== setup.hookPath);
  return { ...hooks, [stage]: [strataHook(stage, setup), ...others] };
}

/** A copy of `config` carrying the strata hooks at `stages` (default: all three). */
export function injectStrataHooks(
  config: RuntimeConfig,
  setup: HookSetup,
  stages: readonly HookStage[] = HOOK_STAGES,
): RuntimeConfig {
  return { ...config, hooks: withStrataHooks(config.hooks, setup, stages) };
}
