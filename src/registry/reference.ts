// Image references as users type them, parsed the way podman and docker do (distribution's
// reference grammar): [HOST[:PORT]/]PATH[:TAG][@DIGEST]. The first component is a host when it
// holds a '.' or a ':' or is "localhost"; otherwise the reference is unqualified and
// registries.conf's unqualified-search-registries decide (docker.io when none are set here).
// docker.io names get their "library/" prefix, and "index.docker.io" / "registry-1.docker.io"
// are docker.io; the wire host for docker.io is registry-1.docker.io.
import { InvalidArgumentError } from '../errors.js';

export const DOCKER_HUB = 'docker.io';
export const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io';

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const HOST =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export interface ImageReference {
  /** "docker.io", "quay.io", "127.0.0.1:5000"; undefined for an unqualified name. */
  registry: string | undefined;
  /** "library/debian", "org/app". */
  repository: string;
  tag: string | undefined;
  digest: string | undefined;
}

export interface QualifiedReference extends ImageReference {
  registry: string;
}

function invalid(ref: string, why: string): InvalidArgumentError {
  return new InvalidArgumentError(`invalid image reference ${JSON.stringify(ref)}: ${why}`, {
    op: 'parse-ref',
    ref,
  });
}

/** Parse without choosing a registry for an unqualified name (docker.io/library normalisation applies to qualified docker.io names). */
export function parseImageReference(ref: string): ImageReference {
  let rest = ref.replace(/^docker:\/\//, '');
  if (rest.length === 0 || rest.length > 4096) throw invalid(ref, 'empty or too long');
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw invalid(ref, `bad digest ${JSON.stringify(digest)}`);
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(ref, `bad tag ${JSON.stringify(tag)}`);
  }
  const parts = rest.split('/');
  let registry: string | undefined;
  if (parts.length > 1 && (/[.:]/.test(parts[0]) || parts[0] === 'localhost')) {
    registry = parts.shift()!;
    if (!HOST.test(registry)) throw invalid(ref, `bad registry host ${JSON.stringify(registry)}`);
    registry = registry.toLowerCase();
    if (registry === 'index.docker.io' || registry === DOCKER_HUB_ENDPOINT) registry = DOCKER_HUB;
  }
  for (const p of parts) {
    if (!COMPONENT.test(p)) throw invalid(ref, `bad repository component ${JSON.stringify(p)}`);
  }
  let repository = parts.join('/');
  if (repository.length > 255) throw invalid(ref, 'repository name longer than 255 characters');
  if (registry === DOCKER_HUB && parts.length === 1) repository = `library/${repository}`;
  return { registry, repository, tag, digest };
}

/** The reference in `registry` (an unqualified one gets it; docker.io adds library/). */
export function qualify(ref: ImageReference, registry: string): QualifiedReference {
  if (ref.registry !== undefined) return ref as QualifiedReference;
  const repository =
    registry === DOCKER_HUB && !ref.repository.includes('/') ? `library/${ref.repository}` : ref.repository;
  return { ...ref, registry, repository };
}

/** "docker.io/library/debian:12", "host/x@sha256:…"; `latest` when neither tag nor digest. */
export function formatReference(ref: QualifiedReference): string {
  const tag = ref.tag ?? (ref.digest ? '' : 'latest');
  return `${ref.registry}/${ref.repository}${tag ? `:${tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/**
 * The name the store records: "docker.io/library/debian:12". The store's names always carry a
 * tag, so a digest-only reference is recorded as tag "sha256-<hex>" (podman keeps it untagged).
 */
export function storeName(ref: QualifiedReference): string {
  const tag = ref.tag ?? (ref.digest ? ref.digest.replace(':', '-').slice(0, 128) : 'latest');
  return `${ref.registry}/${ref.repository}:${tag}`;
}

/** What to ask the registry's manifest endpoint for: the digest when pinned, else the tag. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

/** The wire host of a registry name. */
export function endpointHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_ENDPOINT : registry;
}
