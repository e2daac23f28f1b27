// The daemon's side of `strata run` (protocol: src/run/protocol.ts). One connection is one foreground
// container: the front end's request is parsed with the front end's own environment and cwd,
// the bundle and record are written, the root is prepared while the front end starts the
// runtime, and when the runtime has ended (reported by the front end, or seen through its pid if
// the front end vanished) the container is cleaned up and strata's exit code sent back.
import { resolve } from 'node:path';
import type { Socket } from 'node:net';

import { parseRunArgs, type RunArgs } from '../run/args.js';
import { RUN_FAILED } from '../run/exit-codes.js';
import { endCode, finishForeground, startForeground } from '../run/foreground.js';
import { resolveRunDir } from '../run/paths.js';
import { needsPull } from '../run/pull-policy.js';
import { runtimeFor, selectRuntime, type Runtime } from '../run/runtime.js';
import type { RunContext } from '../run/create.js';
import type { CgroupNamespace } from '../run/cgroup-ns.js';
import { commandProblem, type CommandProblem } from '../run/command-check.js';
import { readRecord, type ContainerRecord, type RuntimeName } from '../run/record.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, StrataError } from '../errors.js';
import { resolveRoot } from '../store/store.js';
import type { ContainerManager } from './containers.js';
import type { Logger } from './log.js';
import type { BackgroundRemovals } from './removals.js';
import { resolveSocket } from './paths.js';
import { watchPid } from './pid-watch.js';
import {
  decodeRunMessages,
  encodeExec,
  encodeExit,
  encodeRunMessage,
  parseExited,
  parseResume,
  parseRunRequest,
  type RunMessage,
  type RuntimeEnd,
} from '../run/protocol.js';

export interface RunServiceOptions {
  storeRoot: string;
  socketPath: string;
  manager: ContainerManager;
  logger: Logger;
  /** The namespace crun runs in on a hybrid-cgroup host (one per daemon, made on first use). */
  cgroupNamespace: (unshare: string) => CgroupNamespace;
  /** Deletes a `--rm` container's directory after its exit code went back (src/daemon/removals.ts). */
  removals?: BackgroundRemovals;
}

interface ActiveRun {
  record: ContainerRecord;
  /** The image's judgement of the container's command, for one that did not start. */
  commandProblem?: () => CommandProblem | undefined;
  ctx: RunContext;
  rt: Runtime;
  /** performance.now() marks for the log line that ends the run. */
  t0: number;
  created: number;
  exited?: number;
  /** The root being prepared ahead: released only once it is ready (or failed). */
  prepared: Promise<void>;
  runtimePid?: number;
  finished?: Promise<void>;
}

function envMap(entries: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of entries) {
    const eq = e.indexOf('=');
    if (eq > 0) env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  return env;
}

function errorText(err: unknown): string {
  return `strata: ${err instanceof Error ? err.message : String(err)}`;
}

/** Serves one front end connection whose first bytes (`head`) are a run message. */
export function serveRunConnection(
  socket: Socket,
  head: Buffer,
  peerPid: number,
  opts: RunServiceOptions,
): void {
  const { manager, logger } = opts;
  let buf = head;
  let run: ActiveRun | undefined;
  let queue = Promise.resolve();
  let ended = false;
  let gone = false;

  const reply = (data: Buffer, last = false): void => {
    if (socket.destroyed) return;
    if (gone) {
      socket.destroy(); // nobody reads it any more
      return;
    }
    if (last) socket.end(data);
    else socket.write(data);
  };
  const fail = (err: unknown): void => {
    if (!(err instanceof StrataError)) logger.log('error', `run (front end pid ${peerPid}): ${String(err)}`);
    reply(encodeExit(RUN_FAILED, errorText(err)), true);
    ended = true;
  };

  const finish = (end: RuntimeEnd | undefined): Promise<void> => {
    if (!run) return Promise.resolve();
    const r = run;
    r.exited ??= performance.now();
    r.finished ??= (async () => {
      const id = r.record.id;
      await r.prepared.catch(() => undefined);
      await manager.containerEnded(id, 'its runtime ended');
      const tReleased = performance.now();
      const result = await finishForeground(
        r.ctx,
        r.rt,
        r.record,
        end,
        { why: manager.takeFailure(id), commandProblem: r.commandProblem },
        { removeLater: opts.removals },
      );
      const ms = (t: number | undefined): string => ((t ?? 0) - r.t0).toFixed(1);
      logger.log(
        'info',
        `container ${id}: foreground run ended (${end ? `${end.kind} ${end.value}` : 'front end gone'}; ` +
          `exit ${result.code}; ms since request: created ${ms(r.created)}, runtime ended ${ms(r.exited)}, ` +
          `released ${ms(tReleased)}, cleaned up ${ms(performance.now())})`,
      );
      reply(encodeExit(result.code, result.message), true);
    })().catch((err: unknown) => fail(err));
    return r.finished;
  };

  const start = async (msg: RunMessage): Promise<void> => {
    const t0 = performance.now();
    const req = parseRunRequest(msg);
    const env = envMap(req.env);
    const args: RunArgs = parseRunArgs(req.argv);
    const socketPath = resolve(req.cwd, resolveSocket(args.socket, env));
    if (args.help || args.detach || socketPath !== opts.socketPath) {
      // The Node CLI prints the usage, runs -d with its monitor, or talks to the other daemon.
      reply(encodeRunMessage('fallback', []), true);
      ended = true;
      return;
    }
    const storeRoot = resolve(req.cwd, resolveRoot(args.root, env));
    if (storeRoot === opts.storeRoot && (await needsPull(storeRoot, args.image, args.pull))) {
      // The Node CLI pulls (progress on the user's terminal, credentials from the user's env).
      reply(encodeRunMessage('fallback', []), true);
      ended = true;
      return;
    }
    if (storeRoot !== opts.storeRoot) {
      throw new FailedPreconditionError(
        `the daemon on ${opts.socketPath} serves the store ${opts.storeRoot}, not ${storeRoot}: ` +
          'give this store its own daemon socket (--socket or STRATA_SOCKET)',
      );
    }
    const ctx: RunContext = {
      storeRoot,
      socketPath,
      runDir: resolve(req.cwd, resolveRunDir(args.runDir, env)),
    };
    const rt = selectRuntime(ctx.runDir, args.runtime ?? (env.STRATA_RUNTIME as RuntimeName | undefined));
    const mntns = rt.unshare ? await opts.cgroupNamespace(rt.unshare).path() : undefined;
    const started = await startForeground(ctx, args, rt, {
      ownerPid: peerPid,
      hostEnv: env,
      mntns,
      indexes: manager.indexes,
    });
    // The answer first: the front end forks the runtime while the root is prepared (the part of
    // the preparation before its first wait would otherwise delay it). The createContainer hook
    // waits for it; the root is pending before this turn of the event loop ends, before any hook
    // can ask.
    const created = performance.now();
    reply(encodeExec(started.exec));
    const prepared = manager.prepareAhead(started.record.id, started.bundle, started.config);
    prepared.catch(() => undefined); // its error is the hook's and the final message's
    run = {
      record: started.record,
      commandProblem: () => commandProblem(manager.indexes.get(started.indexDigest), started.config),
      ctx,
      rt,
      t0,
      created,
      prepared,
    };
  };

  // A front end whose daemon went away during the run (killed, or replaced by --upgrade) goes on
  // with this one: its container's root was taken over from the fd holder (containers.ts adopt),
  // and its record is on disk. The record names its owner: only that process may resume it.
  const resume = async (msg: RunMessage): Promise<void> => {
    const t0 = performance.now();
    const req = parseResume(msg);
    let record: ContainerRecord | undefined;
    try {
      record = readRecord(req.runDir, req.id);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    if (!record) {
      // The daemon that went away finished it already (the front end did not see its answer).
      const code = req.end ? endCode(req.end) : RUN_FAILED;
      reply(encodeExit(code, req.end ? '' : `strata: container ${req.id} has no record any more`), true);
      ended = true;
      return;
    }
    if (record.ownerPid !== peerPid) {
      throw new FailedPreconditionError(
        `container ${record.name} is run by pid ${record.ownerPid ?? '(none)'}, not by pid ${peerPid}`,
      );
    }
    const ctx: RunContext = { storeRoot: opts.storeRoot, socketPath: opts.socketPath, runDir: req.runDir };
    run = {
      record,
      ctx,
      rt: runtimeFor(req.runDir, record.runtime),
      t0,
      created: t0,
      prepared: Promise.resolve(),
      runtimePid: req.runtimePid,
    };
    logger.log(
      'info',
      `container ${record.id}: its front end (pid ${peerPid}) reconnected` +
        (req.end
          ? ` after its runtime ended (${req.end.kind} ${req.end.value})`
          : '; waiting for its runtime'),
    );
    if (req.end) await finish(req.end);
  };

  const handle = async (msg: RunMessage): Promise<void> => {
    if (ended) return;
    if (!run) {
      if (msg.verb === 'resume') await resume(msg);
      else if (msg.verb !== 'run')
        throw new InvalidArgumentError(`expected a run request first, got "${msg.verb}"`);
      else await start(msg);
    } else if (msg.verb === 'started') {
      const pid = Number(msg.fields[0]);
      if (Number.isInteger(pid) && pid > 1) run.runtimePid = pid;
    } else if (msg.verb === 'exited') {
      await finish(parseExited(msg));
    } else throw new InvalidArgumentError(`unexpected "${msg.verb}" message during a run`);
  };

  const take = (): void => {
    let messages: RunMessage[];
    try {
      ({ messages, rest: buf } = decodeRunMessages(buf));
    } catch (err) {
      fail(err);
      return;
    }
    for (const msg of messages) queue = queue.then(() => handle(msg)).catch((err: unknown) => fail(err));
  };

  socket.on('data', (data: Buffer) => {
    buf = Buffer.concat([buf, data]);
    take();
  });
  // The front end never half-closes during a run: an end of its stream (the server allows half
  // open connections) means it is gone, as a close does.
  const frontEndGone = (): void => {
    if (gone) return;
    gone = true;
    void queue.then(() => {
      // Handed over (strata daemon --upgrade): the front end resumes with the next daemon.
      if (!run || run.finished || manager.handingOver) return;
      // The front end is gone before reporting. Its runtime may still run the container: wait for
      // that process to end, then clean up as for a runtime whose status nobody saw.
      const r = run;
      if (r.runtimePid) watchPid(r.runtimePid, () => void finish(undefined));
      else void finish(undefined);
    });
  };
  socket.on('end', frontEndGone);
  socket.on('close', frontEndGone);
  take();
}
