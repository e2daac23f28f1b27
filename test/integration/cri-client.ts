// A small CRI (Kubernetes Container Runtime Interface, v1) client for the tests: gRPC over
// containerd's unix socket with @grpc/grpc-js, messages from the CRI api.proto of Debian's
// containerd source (proto/cri-api-v1.proto) loaded at run time by @grpc/proto-loader. Field
// names are camelCase (podSandboxId), enums strings ('NODE'), int64 plain numbers.
//
// Helpers build the configs the tests need: host-network pods (no CNI on this machine), a
// container running a command, and the steps of one pod's life.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO = fileURLToPath(new URL('proto/cri-api-v1.proto', import.meta.url));

export interface KeyValue {
  key: string;
  value: string;
}

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt?: number;
}

export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  logDirectory?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: {
    cgroupParent?: string;
    securityContext?: {
      namespaceOptions?: {
        network?: 'POD' | 'CONTAINER' | 'NODE';
        pid?: 'POD' | 'CONTAINER' | 'NODE';
        ipc?: 'POD' | 'CONTAINER' | 'NODE';
      };
      privileged?: boolean;
    };
  };
}

export interface ContainerConfig {
  metadata: { name: string; attempt?: number };
  image: { image: string; annotations?: Record<string, string> };
  command?: string[];
  args?: string[];
  workingDir?: string;
  envs?: KeyValue[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  logPath?: string;
  stdin?: boolean;
  tty?: boolean;
}

export interface ExecSyncResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}

export interface ContainerStatus {
  id: string;
  state: 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';
  exitCode: number;
  reason: string;
  message: string;
  imageRef: string;
}

export interface PodSandboxStatus {
  id: string;
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
}

type Callback = (err: grpc.ServiceError | null, res: unknown) => void;
type Method = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: Callback) => void;

interface ServiceCtor {
  new (address: string, creds: grpc.ChannelCredentials, opts?: object): grpc.Client;
}

let loaded: { Runtime: ServiceCtor; Image: ServiceCtor } | undefined;

function services(): { Runtime: ServiceCtor; Image: ServiceCtor } {
  if (loaded) return loaded;
  const def = protoLoader.loadSync(PROTO, { keepCase: false, longs: Number, enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    runtime: { v1: { RuntimeService: ServiceCtor; ImageService: ServiceCtor } };
  };
  loaded = { Runtime: pkg.runtime.v1.RuntimeService, Image: pkg.runtime.v1.ImageService };
  return loaded;
}

/** A gRPC error from the CRI server, with its status code (grpc.status) and details. */
export class CriError extends Error {
  constructor(
    readonly method: string,
    readonly code: number,
    readonly details: string,
  ) {
    super(`CRI ${method}: ${grpc.status[code] ?? code}: ${details}`);
  }
}

export class CriClient {
  private readonly runtime: grpc.Client;
  private readonly image: grpc.Client;

  /** `address`: containerd's gRPC socket path. */
  constructor(
    readonly address: string,
    private readonly timeoutMs = 30_000,
  ) {
    const { Runtime, Image } = services();
    const target = `unix://${address}`;
    this.runtime = new Runtime(target, grpc.credentials.createInsecure());
    this.image = new Image(target, grpc.credentials.createInsecure());
  }

  /** Calls `method` of the runtime (or image) service; rejects with CriError on a gRPC status. */
  call<T>(method: string, request: object, opts: { image?: boolean; timeoutMs?: number } = {}): Promise<T> {
    const client = opts.image ? this.image : this.runtime;
    const fn = (client as unknown as Record<string, Method>)[method];
    if (typeof fn !== 'function') return Promise.reject(new Error(`CRI has no method ${method}`));
    const deadline = Date.now() + (opts.timeoutMs ?? this.timeoutMs);
    return new Promise((resolve, reject) => {
      fn.call(client, request, new grpc.Metadata(), { deadline }, (err, res) => {
        if (err) reject(new CriError(method, err.code, err.details));
        else resolve(res as T);
      });
    });
  }

  version(): Promise<{ runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }> {
    return this.call('version', { version: 'v1' });
  }

  async runPodSandbox(config: PodSandboxConfig, runtimeHandler = ''): Promise<string> {
    return (await this.call<{ podSandboxId: string }>('runPodSandbox', { config, runtimeHandler }))
      .podSandboxId;
  }

  async podSandboxStatus(podSandboxId: string): Promise<PodSandboxStatus> {
    return (await this.call<{ status: PodSandboxStatus }>('podSandboxStatus', { podSandboxId })).status;
  }

  async stopPodSandbox(podSandboxId: string): Promise<void> {
    await this.call('stopPodSandbox', { podSandboxId });
  }

  async removePodSandbox(podSandboxId: string): Promise<void> {
    await this.call('removePodSandbox', { podSandboxId });
  }

  async listPodSandbox(): Promise<{ id: string; state: string; runtimeHandler: string }[]> {
    return (
      await this.call<{ items: { id: string; state: string; runtimeHandler: string }[] }>(
        'listPodSandbox',
        {},
      )
    ).items;
  }

  async createContainer(
    podSandboxId: string,
    config: ContainerConfig,
    sandboxConfig: PodSandboxConfig,
  ): Promise<string> {
    const res = await this.call<{ containerId: string }>('createContainer', {
      podSandboxId,
      config,
      sandboxConfig,
    });
    return res.containerId;
  }

  async startContainer(containerId: string): Promise<void> {
    await this.call('startContainer', { containerId });
  }

  async stopContainer(containerId: string, timeoutSeconds = 10): Promise<void> {
    await this.call('stopContainer', { containerId, timeout: timeoutSeconds });
  }

  async removeContainer(containerId: string): Promise<void> {
    await this.call('removeContainer', { containerId });
  }

  async containerStatus(containerId: string): Promise<ContainerStatus> {
    return (await this.call<{ status: ContainerStatus }>('containerStatus', { containerId })).status;
  }

  async listContainers(): Promise<{ id: string; podSandboxId: string; state: string }[]> {
    return (
      await this.call<{ containers: { id: string; podSandboxId: string; state: string }[] }>(
        'listContainers',
        {},
      )
    ).containers;
  }

  /** Runs `cmd` in the container; `timeoutSeconds` 0 = no limit on the server side. */
  execSync(containerId: string, cmd: string[], timeoutSeconds = 10): Promise<ExecSyncResult> {
    return this.call('execSync', { containerId, cmd, timeout: timeoutSeconds });
  }

  async listImages(): Promise<string[]> {
    const res = await this.call<{ images: { repoTags: string[] }[] }>('listImages', {}, { image: true });
    return res.images.flatMap((i) => i.repoTags);
  }

  close(): void {
    this.runtime.close();
    this.image.close();
  }
}

let podCount = 0;

/** A host-network pod (no CNI needed; so no hostname of its own): unique name and uid, logs under
 * `logDirectory`. */
export function hostNetworkPod(
  logDirectory: string,
  name = `pod-${process.pid}-${++podCount}`,
): PodSandboxConfig {
  return {
    metadata: { name, uid: `${name}-uid`, namespace: 'strata-test', attempt: 0 },
    logDirectory,
    linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'POD', ipc: 'POD' } } },
  };
}

/** A container of `image` running `command`, logging to `<pod log dir>/<name>.log`. */
export function commandContainer(name: string, image: string, command: string[]): ContainerConfig {
  return { metadata: { name, attempt: 0 }, image: { image }, command, logPath: `${name}.log` };
}

/** RunPodSandbox + CreateContainer + StartContainer: the pod id and the container id. */
export async function startPod(
  cri: CriClient,
  pod: PodSandboxConfig,
  container: ContainerConfig,
  runtimeHandler = '',
): Promise<{ podId: string; containerId: string }> {
  const podId = await cri.runPodSandbox(pod, runtimeHandler);
  try {
    const containerId = await cri.createContainer(podId, container, pod);
    await cri.startContainer(containerId);
    return { podId, containerId };
  } catch (err) {
    await removePod(cri, podId).catch(() => undefined);
    throw err;
  }
}

/** StopPodSandbox + RemovePodSandbox (which removes its containers). */
export async function removePod(cri: CriClient, podId: string): Promise<void> {
  await cri.stopPodSandbox(podId);
  await cri.removePodSandbox(podId);
}
