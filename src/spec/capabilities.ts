// --cap-add / --cap-drop over podman's default set, with podman's rules: names with or without
// CAP_, any case, "ALL"; drop ALL empties the set before adding; a non-root process gets only
// the explicitly added capabilities as effective/permitted/ambient (the rest stay in bounding).
import { InvalidArgumentError } from '../errors.js';
import type { Capabilities } from '../schema/generated/runtime-config.js';
import { ALL_CAPABILITIES, DEFAULT_CAPABILITIES } from './defaults.js';

function normalize(name: string, flag: string): string {
  const upper = name.trim().toUpperCase();
  if (upper === 'ALL') return 'ALL';
  const cap = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  if (!ALL_CAPABILITIES.includes(cap))
    throw new InvalidArgumentError(`${flag} ${name}: unknown capability`, { op: 'capabilities' });
  return cap;
}

/** Sorted by name, as podman writes them. */
function ordered(set: Set<string>): string[] {
  return [...set].sort();
}

export function buildCapabilities(capAdd: string[] = [], capDrop: string[] = [], uid: number): Capabilities {
  const add = capAdd.map((c) => normalize(c, '--cap-add'));
  const drop = capDrop.map((c) => normalize(c, '--cap-drop'));
  const set = new Set<string>(
    drop.includes('ALL') ? [] : add.includes('ALL') ? ALL_CAPABILITIES : DEFAULT_CAPABILITIES,
  );
  for (const c of add) if (c !== 'ALL') set.add(c);
  if (!drop.includes('ALL')) for (const c of drop) set.delete(c);
  const bounding = ordered(set);
  if (uid === 0) return { bounding, effective: bounding, permitted: bounding };
  // What a non-root user may use is only what was asked for; ambient carries it across execve.
  const granted = ordered(new Set(add.includes('ALL') ? bounding : add.filter((c) => set.has(c))));
  return { bounding, effective: granted, permitted: granted, inheritable: granted, ambient: granted };
}
