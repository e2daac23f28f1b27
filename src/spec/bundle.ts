// `strata bundle`: an OCI bundle that plain `runc run` / `crun run` can start. config.json comes
// from the image config (runtime-config.ts), with the three strata hooks (hook-injection.ts), the org.strata.image annotation
// (the manifest digest, so a later re-tag cannot change what the bundle runs) and the socket the
// hooks talk to; rootfs/ stays empty: the createContainer hook covers it with the image.
import { hostname as hostHostname } from 'node:os';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { IMAGE_ANNOTATION, SECCOMP_BPF_ANNOTATION, SECCOMP_FAIL_UNKNOWN_ANNOTATION } from './annotations.js';
import { buildRuntimeConfig, type ImageConfigInput } from './runtime-config.js';
import type { RuntimeConfig } from '../schema/generated/runtime-config.js';
import type { RunOptions } from './options.js';
import { parseAndValidate } from '../schema/validate.js';
import { writeFileAtomicSync } from '../store/atomic.js';
import { blobPath } from '../store/layout.js';
import { loadTreeIndex, resolveImageRecord } from '../store/records.js';
import type { TreeIndex } from '../store/tree-index.js';
import { HOOK_STAGES, withStrataHooks } from './hook-injection.js';
import { readImageFile } from '../store/image-file.js';
import { precompileSeccomp } from './seccomp-bpf.js';
import type { LinuxSeccomp } from './seccomp.js';

export interface BundleOptions {
  storeRoot: string;
  /** A name, name:tag or digest of a stored image. */
  image: string;
  dir: string;
  run: RunOptions;
  socketPath: string;
  hookPath: string;
  /** createRuntime starts the daemon with this argv when none answers; omitted: it must be running. */
  daemonArgv?: string[];
  /** Seconds per hook. Default 30. */
  hookTimeout?: number;
  /**
   * The daemon prepares the root itself and sees the runtime end (`strata run`): the bundle then
   * carries only the createContainer hook, which attaches the root. Default: all three hooks, so
   * a plain `crun run` of the bundle works on its own.
   */
  rootFromDaemon?: boolean;
  /**
   * fsync the files (default). `strata run` passes false: its bundle is of no use after a reboot
   * (the container is gone with it), and each fsync was a disk flush on the start path where
   * /run is not a tmpfs. The writes stay atomic (rename) either way.
   */
  durable?: boolean;
  /** Tree indexes already mapped (the daemon's cache); default: map the image's index here. */
  indexes?: { get(indexDigest: string): TreeIndex };
}

export interface BundleResult {
  dir: string;
  config: RuntimeConfig;
  manifestDigest: string;
  indexDigest: string;
}

function hostsFile(name: string): string {
  return `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${name}\n`;
}

function resolvConf(network: RunOptions['network']): string {
  // With a private network namespace there is no DNS to reach; host networking shares the host's.
  if (network !== 'host') return '';
  try {
    return readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    return '';
  }
}

export async function writeBundle(opts: BundleOptions): Promise<BundleResult> {
  const dir = resolve(opts.dir);
  const image = await resolveImageRecord(opts.storeRoot, opts.image);
  const imageConfig = parseAndValidate<ImageConfigInput>(
    'oci-image-config',
    readFileSync(blobPath(opts.storeRoot, image.configDigest)),
    `config ${image.configDigest} of image ${opts.image}`,
  );
  const index = opts.indexes?.get(image.indexDigest) ?? loadTreeIndex(opts.storeRoot, image);

  const setup = {
    hookPath: opts.hookPath,
    socketPath: opts.socketPath,
    daemonArgv: opts.daemonArgv,
    timeout: opts.hookTimeout,
  };
  const etcFiles = {
    hosts: join(dir, 'hosts'),
    hostname: join(dir, 'hostname'),
    resolvConf: join(dir, 'resolv.conf'),
  };
  const config = buildRuntimeConfig(
    imageConfig,
    {
      ...opts.run,
      etcFiles: { ...etcFiles, ...opts.run.etcFiles },
      annotations: { ...opts.run.annotations, [IMAGE_ANNOTATION]: image.manifestDigest },
      hooks: withStrataHooks(opts.run.hooks, setup, opts.rootFromDaemon ? ['createContainer'] : HOOK_STAGES),
    },
    (path) => readImageFile(index, opts.storeRoot, path),
  );

  // crun takes the filter precompiled (seccomp-bpf.ts); runc ignores the annotation, so a bundle
  // for runc goes without it. A user asking crun to fail on unknown syscalls gets crun's own compile.
  const seccomp = config.linux?.seccomp as LinuxSeccomp | undefined;
  if (
    seccomp &&
    opts.run.runtime !== 'runc' &&
    config.annotations?.[SECCOMP_FAIL_UNKNOWN_ANNOTATION] === undefined
  ) {
    const bpf = precompileSeccomp(seccomp, opts.storeRoot);
    if (bpf !== undefined) config.annotations = { ...config.annotations, [SECCOMP_BPF_ANNOTATION]: bpf };
  }

  mkdirSync(join(dir, 'rootfs'), { recursive: true, mode: 0o755 });
  const name = config.hostname ?? (opts.run.network === 'host' ? hostHostname() : 'strata');
  const file = { mode: 0o644, durable: opts.durable ?? true };
  if (!opts.run.etcFiles?.hosts) writeFileAtomicSync(etcFiles.hosts, hostsFile(name), file);
  if (!opts.run.etcFiles?.hostname) writeFileAtomicSync(etcFiles.hostname, `${name}\n`, file);
  if (!opts.run.etcFiles?.resolvConf)
    writeFileAtomicSync(etcFiles.resolvConf, resolvConf(opts.run.network), file);
  writeFileAtomicSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n', file);
  return { dir, config, manifestDigest: image.manifestDigest, indexDigest: image.indexDigest };
}
