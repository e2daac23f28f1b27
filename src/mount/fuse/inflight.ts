// The requests whose handlers went asynchronous, by unique id, so that INTERRUPT (and DESTROY) can
// answer them EINTR before they settle. Only those are tracked: a synchronous answer is written
// before the next request is read, so an INTERRUPT for it finds nothing and is ignored, as the
// protocol allows. Nothing here is allocated that a request does not need: the AbortSignal is
// made only when a handler asks for it, and a tracked request costs one record and one promise
// (an AbortController, a listener and a Promise.race per asynchronous request were a large share
// of the server's garbage while reading every file of an image).
import type { RequestContext } from './raw.js';
import { EINTR } from './constants.js';
import { recycleReply } from './reply-pool.js';
import { encodeErrorReply, encodeReply, type FuseInHeader, type FuseUnique } from './wire/header.js';

/** One request as its handler sees it (RequestContext), and its in-flight state. */
export class RequestRecord implements RequestContext {
  readonly header: FuseInHeader;
  private controller?: AbortController;
  private interruptedFlag = false;
  /** Set while tracked: delivers the reply (the handler's, or EINTR). */
  private deliver?: (reply: Buffer) => void;

  constructor(header: FuseInHeader) {
    this.header = header;
  }

  /** Made on first use; already aborted when the request was interrupted before that. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.interruptedFlag) this.controller.abort();
    }
    return this.controller.signal;
  }

  get interrupted(): boolean {
    return this.interruptedFlag;
  }

  /** Aborts the signal (if anyone holds it) and answers EINTR now; false if it already settled. */
  interrupt(): boolean {
    if (this.interruptedFlag) return false;
    this.interruptedFlag = true;
    this.controller?.abort();
    return this.settle(encodeErrorReply(this.header.unique, EINTR));
  }

  /** The first reply wins; a later one is dropped (its pooled memory goes back to the pool). */
  settle(reply: Buffer): boolean {
    const deliver = this.deliver;
    if (!deliver) {
      recycleReply(reply);
      return false;
    }
    this.deliver = undefined;
    deliver(reply);
    return true;
  }

  /** @internal InflightRequests only. */
  attach(deliver: (reply: Buffer) => void): void {
    this.deliver = deliver;
  }
}

/**
 * Tracked records live in a slot array rather than a Map by unique id: a Map's table is
 * reallocated whenever its size crosses a power of two, and with a few READs in flight it did so
 * constantly; each new table, held by the long-lived Map, survived scavenges and was promoted,
 * and Map.delete made most of the old generation's garbage while reading every file (bench-fs
 * without passthrough, sampling heap profile). The array only grows to the most requests ever in
 * flight at once; INTERRUPT, which is rare, scans it.
 */
export class InflightRequests {
  private readonly slots: (RequestRecord | undefined)[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  private add(record: RequestRecord): number {
    let slot = this.slots.indexOf(undefined);
    if (slot < 0) slot = this.slots.push(undefined) - 1;
    this.slots[slot] = record;
    this.count++;
    return slot;
  }

  private remove(slot: number): void {
    this.slots[slot] = undefined;
    this.count--;
  }

  private find(unique: FuseUnique): RequestRecord | undefined {
    for (const record of this.slots) if (record?.header.unique === unique) return record;
    return undefined;
  }

  /**
   * Tracks an asynchronous handler: resolves with the reply to its body (`failure` turns a
   * rejection into an error reply), or with EINTR as soon as the request is interrupted. Never
   * rejects.
   */
  track(
    record: RequestRecord,
    work: Promise<Buffer | undefined>,
    failure: (record: RequestRecord, error: unknown) => Buffer,
  ): Promise<Buffer> {
    const unique = record.header.unique;
    const slot = this.add(record);
    const reply = new Promise<Buffer>((resolve) =>
      record.attach((out) => {
        this.remove(slot);
        resolve(out);
      }),
    );
    work.then(
      (body) => void record.settle(encodeReply(unique, body)),
      (error: unknown) => void record.settle(failure(record, error)),
    );
    return reply;
  }

  /** INTERRUPT: false when the request is unknown or already answered. */
  interrupt(unique: FuseUnique): boolean {
    return this.find(unique)?.interrupt() ?? false;
  }

  /** Interrupts every tracked request but `except` (DESTROY must still answer itself). */
  interruptAll(except?: FuseUnique): void {
    for (const record of [...this.slots]) if (record && record.header.unique !== except) record.interrupt();
  }
}
