// One container's root filesystem as the daemon holds it: a state machine with one class per
// state, as containerd's shim does for a process (runc/process/init_state.go). Every state
// answers every event; an event a state does not allow throws InvalidTransitionError naming
// both. The hooks today, and the containerd shim and the OCI runtime CLI tomorrow, drive it
// through the two events below and nothing else.
//
//   prepared ──attach()──▶ attached ◀── (adopted: a session taken over from a daemon that died)
//      │  ▲                   │    └──handOver()──▶ released (the session goes on elsewhere)
//      │  └── (adopted with the mount fd the holder kept: createContainer had not come yet)
//      ├──handOver()──▶ released (only when the fd holder keeps the mount fd too)
//      └───────release()──────┴──▶ releasing ──▶ released
//
//   prepared   the daemon holds the mount fd, waiting for createContainer; guards (a deadline,
//              a watch on the container's init) run only in this state
//   attached   the mount fd was handed out; the container's mount namespace holds the mount
//   releasing  our fd is closed; the session is given graceMs to end by itself (ENODEV: the
//              last reference went), then aborted; then serve.ts releases the image's handler
//              and its lease (mount/image-lease.ts: the one place a lease is taken or released)
//   released   nothing is left: no fd, no session, no lease
//
// release() is allowed from every state: in releasing it joins the release under way, in
// released it resolves with the same outcome. attach() is allowed only from prepared; handOver()
// from attached, and from prepared when the fd holder keeps the mount fd (containers.ts knows): it
// stops serving without releasing anything the next daemon takes over (the lease, the fds held by
// the fd holder).
import { closeSync } from 'node:fs';

import type { SessionEnd } from '../mount/session.js';
import type { ServedImage } from '../mount/serve.js';
import { StrataError } from '../errors.js';

export type RootStatus = 'prepared' | 'attached' | 'releasing' | 'released';
export type RootEvent = 'attach' | 'release' | 'handOver';

/** A running check that ends the prepared state from outside (a timer, a pid watch). */
export interface Guard {
  stop(): void;
}

export interface ReleaseOutcome {
  end: SessionEnd;
  /** The session still had users after the grace time and was aborted. */
  aborted: boolean;
}

/** An event the root's current state does not allow. `kind` is NotFound when the root is on its
 * way out (for the caller it is no longer there), FailedPrecondition otherwise. */
export class InvalidTransitionError extends StrataError {
  constructor(
    readonly id: string,
    readonly from: RootStatus,
    readonly event: RootEvent,
    message: string,
  ) {
    super(from === 'releasing' || from === 'released' ? 'NotFound' : 'FailedPrecondition', message, {
      op: event,
    });
  }
}

interface RootState {
  readonly status: RootStatus;
  /** The mount fd for the container; the caller owns it from then on. */
  attach(): number;
  release(graceMs: number): Promise<ReleaseOutcome>;
  handOver(): Promise<void>;
}

/** The served image a root needs: its mount fd, its session, and `done` (the session's end once
 * handler and lease were released). */
export type RootMount = Pick<ServedImage, 'mountFd' | 'session' | 'done' | 'keepLease'>;

/** What a state sees of its machine: the id for messages, and the one way to move on. */
interface Machine {
  readonly id: string;
  go(to: RootState): void;
}

export class ContainerRoot {
  private state: RootState;

  /** `guards` stop when the root leaves prepared, whichever way. `adopted`: the session was
   * taken over from an earlier daemon; the container holds the mount (no mount fd). */
  constructor(
    readonly id: string,
    mount: RootMount,
    guards: Guard[] = [],
    adopted = false,
  ) {
    const machine: Machine = { id, go: (to) => (this.state = to) };
    this.state =
      adopted && mount.mountFd < 0
        ? new AttachedState(machine, mount)
        : new PreparedState(machine, mount, guards);
  }

  /** attached → released, leaving the session, its lease and its held fd to the next daemon. */
  handOver(): Promise<void> {
    return this.state.handOver();
  }

  get status(): RootStatus {
    return this.state.status;
  }

  /** prepared → attached: returns the mount fd, which the caller now owns (send it, close it). */
  attach(): number {
    return this.state.attach();
  }

  /** any → releasing → released. Resolves once nothing is left; rejects only when the lease
   * could not be removed (the root is released all the same). */
  release(graceMs: number): Promise<ReleaseOutcome> {
    return this.state.release(graceMs);
  }
}

class PreparedState implements RootState {
  readonly status = 'prepared';
  constructor(
    private readonly root: Machine,
    private readonly mount: RootMount,
    private readonly guards: Guard[],
  ) {}

  attach(): number {
    for (const g of this.guards) g.stop();
    this.root.go(new AttachedState(this.root, this.mount));
    return this.mount.mountFd;
  }

  release(graceMs: number): Promise<ReleaseOutcome> {
    for (const g of this.guards) g.stop();
    closeSync(this.mount.mountFd); // ours until attach: with it gone, the session can end
    return enterReleasing(this.root, this.mount, graceMs);
  }

  /** Only for a root whose mount fd the fd holder keeps too (the manager knows): ours closes. */
  handOver(): Promise<void> {
    for (const g of this.guards) g.stop();
    closeSync(this.mount.mountFd);
    return handOverMount(this.root, this.mount);
  }
}

class AttachedState implements RootState {
  readonly status = 'attached';
  constructor(
    private readonly root: Machine,
    private readonly mount: RootMount,
  ) {}

  attach(): number {
    throw new InvalidTransitionError(
      this.root.id,
      this.status,
      'attach',
      `container ${this.root.id} already received its root`,
    );
  }

  release(graceMs: number): Promise<ReleaseOutcome> {
    return enterReleasing(this.root, this.mount, graceMs);
  }

  handOver(): Promise<void> {
    return handOverMount(this.root, this.mount);
  }
}

/** → released, leaving the session, its lease and its held fds to the next daemon. */
async function handOverMount(root: Machine, mount: RootMount): Promise<void> {
  mount.keepLease();
  const outcome = (async (): Promise<ReleaseOutcome> => {
    // Our device fd goes; the fd holder's copy keeps the connection for the next daemon.
    // The handler's files and idle fds are released after we answered (done): the next daemon
    // waits for our answer, and the kernel for the next daemon.
    const end = await mount.session.close();
    void mount.done.catch(() => undefined);
    return { end, aborted: false };
  })();
  root.go(new ReleasedState(root, outcome));
  await outcome;
}

function enterReleasing(root: Machine, mount: RootMount, graceMs: number): Promise<ReleaseOutcome> {
  const releasing = new ReleasingState(root, mount, graceMs);
  root.go(releasing);
  return releasing.outcome;
}

class ReleasingState implements RootState {
  readonly status = 'releasing';
  readonly outcome: Promise<ReleaseOutcome>;

  constructor(
    private readonly root: Machine,
    mount: RootMount,
    graceMs: number,
  ) {
    this.outcome = this.run(mount, graceMs);
  }

  attach(): number {
    throw gone(this.root.id, this.status);
  }

  release(): Promise<ReleaseOutcome> {
    return this.outcome;
  }

  handOver(): Promise<void> {
    return Promise.reject(gone(this.root.id, this.status, 'handOver'));
  }

  private async run(mount: RootMount, graceMs: number): Promise<ReleaseOutcome> {
    let aborted = false;
    if (mount.session.isOpen) {
      let timer: NodeJS.Timeout | undefined;
      const ended = await Promise.race([
        mount.session.ended,
        new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), graceMs))),
      ]);
      clearTimeout(timer);
      if (!ended) {
        aborted = true;
        await mount.session.close();
      }
    }
    let end: SessionEnd;
    try {
      end = await mount.done;
    } finally {
      // Released even when the lease could not be removed: nothing else is left to retry.
      this.root.go(new ReleasedState(this.root, this.outcome));
    }
    return { end, aborted };
  }
}

class ReleasedState implements RootState {
  readonly status = 'released';
  constructor(
    private readonly root: Machine,
    private readonly outcome: Promise<ReleaseOutcome>,
  ) {}

  attach(): number {
    throw gone(this.root.id, this.status);
  }

  release(): Promise<ReleaseOutcome> {
    return this.outcome;
  }

  handOver(): Promise<void> {
    return Promise.reject(gone(this.root.id, this.status, 'handOver'));
  }
}

function gone(id: string, from: RootStatus, event: RootEvent = 'attach'): InvalidTransitionError {
  return new InvalidTransitionError(
    id,
    from,
    event,
    `no root prepared for container ${id}: its createRuntime hook did not run, failed, or came too long ago`,
  );
}
