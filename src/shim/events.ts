// Task events to containerd: containerd.services.events.ttrpc.v1.Events/Forward on the task's
// $TTRPC_ADDRESS, an Envelope whose Any names the event by its bare type name
// ("containerd.events.TaskExit": no type.googleapis.com/ prefix). One queue per address keeps
// events in the order they happened (TaskExit never before TaskStart); a failed send is retried
// with backoff, and one that keeps failing is logged and dropped so later events still go.
import { create, toBinary, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import { AnySchema, timestampFromDate } from '@bufbuild/protobuf/wkt';

import { ForwardRequestSchema } from '../proto/generated/github.com/containerd/containerd/api/services/ttrpc/events/v1/events_pb.js';
import { TtrpcClient } from '../ttrpc/client.js';

export const TOPICS = {
  create: '/tasks/create',
  start: '/tasks/start',
  exit: '/tasks/exit',
  delete: '/tasks/delete',
  execAdded: '/tasks/exec-added',
  execStarted: '/tasks/exec-started',
  paused: '/tasks/paused',
  resumed: '/tasks/resumed',
  oom: '/tasks/oom',
} as const;

export const EVENTS_SERVICE = 'containerd.services.events.ttrpc.v1.Events';

interface Queue {
  client?: TtrpcClient;
  tail: Promise<void>;
}

export interface PublisherOptions {
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** Attempts per event. Default 5 (backoff 100, 200, 400, 800 ms). */
  attempts?: number;
}

export class EventPublisher {
  private readonly queues = new Map<string, Queue>();
  constructor(private readonly opts: PublisherOptions) {}

  /** Queues one event; resolves once it was delivered or given up. */
  publish<D extends DescMessage>(
    address: string | undefined,
    namespace: string,
    topic: string,
    schema: D,
    event: MessageInitShape<D>,
  ): Promise<void> {
    if (!address) return Promise.resolve();
    const body = toBinary(
      ForwardRequestSchema,
      create(ForwardRequestSchema, {
        envelope: {
          timestamp: timestampFromDate(new Date()),
          namespace,
          topic,
          event: create(AnySchema, {
            typeUrl: schema.typeName,
            value: toBinary(schema, create(schema, event)),
          }),
        },
      }),
    );
    let q = this.queues.get(address);
    if (!q) {
      q = { tail: Promise.resolve() };
      this.queues.set(address, q);
    }
    const queue = q;
    queue.tail = queue.tail.then(() => this.send(address, queue, topic, body));
    return queue.tail;
  }

  private async send(address: string, q: Queue, topic: string, body: Uint8Array): Promise<void> {
    const attempts = this.opts.attempts ?? 5;
    for (let i = 1; ; i++) {
      try {
        if (!q.client || q.client.closed) q.client = await TtrpcClient.connect(address, 2000);
        await q.client.callRaw(EVENTS_SERVICE, 'Forward', body, { timeoutMs: 5000 });
        return;
      } catch (err) {
        q.client?.close();
        q.client = undefined;
        if (i >= attempts) {
          this.opts.log(
            'warn',
            `event ${topic} to ${address} dropped after ${i} attempts: ${(err as Error).message}`,
          );
          return;
        }
        await new Promise((r) => setTimeout(r, 100 * 2 ** (i - 1)));
      }
    }
  }

  /** Closes every connection (queued events still finish or fail). */
  close(): void {
    for (const q of this.queues.values()) q.client?.close();
    this.queues.clear();
  }
}
