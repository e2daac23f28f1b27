// The wire protocol of `strata run` between a front end (the native `strata` executable,
// native/front/strata.c, or the Node CLI) and the daemon. The daemon holds all policy — it parses
// the run options, writes the bundle and the record, prepares the root, and decides the exit
// code; the front end only forks the runtime with the argv it is given, forwards signals to it
// and reports how it ended. That keeps the C side mechanical and the front end's terminal,
// process group and signals exactly those of the user's shell.
//
// A message is a header line "<verb> <length>\n" followed by <length> bytes: a list of fields,
// each ended by a NUL byte (argv and env strings cannot contain NUL, so nothing needs escaping).
//
//   front end -> daemon
//     "run"      [protocol version "1", cwd, argc, argv... (the arguments after `run`), env...]
//     "started"  [pid of the runtime process]
//     "exited"   ["code", N] | ["signal", N] (the runtime's wait status)
//                | ["early", N] (signal N arrived before the runtime was started: none was)
//     "resume"   [protocol version, container id, run dir, runtime pid or "", then optionally
//                kind, N as in "exited"]: the first message on a new connection of a front end
//                whose daemon went away during the run (kill -9, `strata daemon --upgrade`).
//                The daemon that answers now owns the run: with kind and N it finishes it at
//                once and answers "exit"; without, it waits for "exited" as after "started".
//                Only the record's owner (ownerPid = the peer) may resume it.
//   daemon -> front end
//     "exec"     [key=value options..., "--", argv...]: fork and exec argv; options:
//                  cwd=<dir>          the runtime's working directory
//                  stdin=null|inherit /dev/null, or the front end's own stdin
//                  pgrp=new|same      a process group of its own (no terminal), or ours
//                  mntns=<path>       in the child, before exec, enter this mount namespace
//                                     (setns): crun on a hybrid-cgroup host runs in one with a
//                                     pure cgroup2 mount (src/run/cgroup-ns.ts)
//                  pidfile=<path>     where the runtime writes the container's pid (informative)
//                  id=<container id>  rundir=<dir>: what a "resume" names
//     "exit"     [code, message]: print message (if not empty) on stderr, exit with code
//     "fallback" []: the daemon does not handle this invocation (e.g. --help, -d); the front end
//                runs the Node CLI with the same arguments instead
import { InvalidArgumentError } from '../errors.js';
import { NATIVE_CONTRACT } from '../contract/generated/native-contract.js';

export const RUN_PROTOCOL_VERSION = NATIVE_CONTRACT.run.version;
/** A run request carries argv and the environment: 1 MiB is far beyond any real one. */
export const MAX_RUN_MESSAGE = NATIVE_CONTRACT.run.maxMessage;
const MAX_HEADER = NATIVE_CONTRACT.run.maxHeader;

export type FrontVerb = (typeof NATIVE_CONTRACT.run.frontVerbs)[number];
export type DaemonVerb = (typeof NATIVE_CONTRACT.run.daemonVerbs)[number];
export type RunVerb = FrontVerb | DaemonVerb;
const VERBS: readonly RunVerb[] = [...NATIVE_CONTRACT.run.frontVerbs, ...NATIVE_CONTRACT.run.daemonVerbs];

export interface RunMessage {
  verb: RunVerb;
  fields: string[];
}

/** Does this start like a run protocol message (as opposed to a hook request or a JSON API
 * line)? Any verb counts, so a front end that starts with the wrong one gets a run protocol
 * answer rather than a JSON one. */
export function isRunRequest(data: Buffer): boolean {
  const m = /^([a-z]+) /.exec(data.subarray(0, 16).toString('latin1'));
  return m !== null && VERBS.includes(m[1] as RunVerb);
}

export function encodeRunMessage(verb: RunVerb, fields: string[]): Buffer {
  for (const f of fields) {
    if (f.includes('\0')) throw new InvalidArgumentError(`a ${verb} field contains a NUL byte`);
  }
  const body = Buffer.from(fields.map((f) => `${f}\0`).join(''), 'utf8');
  return Buffer.concat([Buffer.from(`${verb} ${body.length}\n`, 'latin1'), body]);
}

/**
 * Takes every complete message from the front of `buf`. Returns them and what is left over (a
 * message still arriving). Throws on a malformed header or an oversized message.
 */
export function decodeRunMessages(buf: Buffer): { messages: RunMessage[]; rest: Buffer } {
  const messages: RunMessage[] = [];
  let at = 0;
  for (;;) {
    const nl = buf.indexOf(0x0a, at);
    if (nl < 0) {
      if (buf.length - at > MAX_HEADER)
        throw new InvalidArgumentError('malformed run message: no header line');
      break;
    }
    const m = /^([a-z]+) (\d{1,8})$/.exec(buf.subarray(at, nl).toString('latin1'));
    if (!m || !VERBS.includes(m[1] as RunVerb)) {
      throw new InvalidArgumentError('malformed run message: bad header line');
    }
    const length = Number(m[2]);
    if (length > MAX_RUN_MESSAGE) throw new InvalidArgumentError(`run message too large (${length} bytes)`);
    if (buf.length < nl + 1 + length) break;
    const body = buf.subarray(nl + 1, nl + 1 + length);
    if (length > 0 && body[length - 1] !== 0) {
      throw new InvalidArgumentError('malformed run message: the last field is not NUL-terminated');
    }
    const fields =
      length === 0
        ? []
        : body
            .subarray(0, length - 1)
            .toString('utf8')
            .split('\0');
    messages.push({ verb: m[1] as RunVerb, fields });
    at = nl + 1 + length;
  }
  return { messages, rest: buf.subarray(at) };
}

export interface RunRequest {
  cwd: string;
  /** The arguments after `run`. */
  argv: string[];
  /** The front end's environment as NAME=VALUE strings. */
  env: string[];
}

export function encodeRunRequest(req: RunRequest): Buffer {
  return encodeRunMessage('run', [
    RUN_PROTOCOL_VERSION,
    req.cwd,
    String(req.argv.length),
    ...req.argv,
    ...req.env,
  ]);
}

export function parseRunRequest(msg: RunMessage): RunRequest {
  const [version, cwd, argc, ...rest] = msg.fields;
  if (msg.verb !== 'run') throw new InvalidArgumentError(`expected a run request, got "${msg.verb}"`);
  if (version !== RUN_PROTOCOL_VERSION) {
    throw new InvalidArgumentError(
      `this daemon speaks run protocol ${RUN_PROTOCOL_VERSION}, the front end ${JSON.stringify(version)}: ` +
        'restart the daemon after an upgrade',
    );
  }
  const n = /^\d{1,7}$/.test(argc ?? '') ? Number(argc) : -1;
  if (!cwd?.startsWith('/') || n < 0 || n > rest.length) {
    throw new InvalidArgumentError('malformed run request: bad cwd or argument count');
  }
  return { cwd, argv: rest.slice(0, n), env: rest.slice(n) };
}

export interface ExecInstruction {
  argv: string[];
  cwd: string;
  stdin: 'null' | 'inherit';
  pgrp: 'new' | 'same';
  /** A mount namespace to run the runtime in (a /proc/PID/ns/mnt path), or undefined. */
  mntns?: string;
  pidFile: string;
  /** The container and its run dir, for a "resume" after the daemon went away. */
  id?: string;
  runDir?: string;
}

export function encodeExec(x: ExecInstruction): Buffer {
  return encodeRunMessage('exec', [
    `cwd=${x.cwd}`,
    `stdin=${x.stdin}`,
    `pgrp=${x.pgrp}`,
    ...(x.mntns ? [`mntns=${x.mntns}`] : []),
    `pidfile=${x.pidFile}`,
    ...(x.id && x.runDir ? [`id=${x.id}`, `rundir=${x.runDir}`] : []),
    '--',
    ...x.argv,
  ]);
}

export function parseExec(msg: RunMessage): ExecInstruction {
  const sep = msg.fields.indexOf('--');
  if (msg.verb !== 'exec' || sep < 0 || sep === msg.fields.length - 1) {
    throw new InvalidArgumentError('malformed exec message');
  }
  const opts = new Map<string, string>();
  for (const f of msg.fields.slice(0, sep)) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`malformed exec option ${JSON.stringify(f)}`);
    opts.set(f.slice(0, eq), f.slice(eq + 1));
  }
  return {
    argv: msg.fields.slice(sep + 1),
    cwd: opts.get('cwd') ?? '/',
    stdin: opts.get('stdin') === 'inherit' ? 'inherit' : 'null',
    pgrp: opts.get('pgrp') === 'same' ? 'same' : 'new',
    mntns: opts.get('mntns') || undefined,
    pidFile: opts.get('pidfile') ?? '',
    id: opts.get('id') || undefined,
    runDir: opts.get('rundir') || undefined,
  };
}

/** How the runtime process ended, as the front end saw it. */
export type RuntimeEnd =
  { kind: 'code'; value: number } | { kind: 'signal'; value: number } | { kind: 'early'; value: number };

export function encodeExited(end: RuntimeEnd): Buffer {
  return encodeRunMessage('exited', [end.kind, String(end.value)]);
}

export function parseExited(msg: RunMessage): RuntimeEnd {
  const [kind, value] = msg.fields;
  const n = Number(value);
  if (
    msg.verb !== 'exited' ||
    !(NATIVE_CONTRACT.run.exitedKinds as readonly string[]).includes(kind) ||
    !Number.isInteger(n) ||
    n < 0
  ) {
    throw new InvalidArgumentError('malformed exited message');
  }
  return { kind: kind as RuntimeEnd['kind'], value: n };
}

export interface ResumeRequest {
  id: string;
  runDir: string;
  runtimePid?: number;
  /** How the runtime ended, when it already has. */
  end?: RuntimeEnd;
}

export function encodeResume(r: ResumeRequest): Buffer {
  return encodeRunMessage('resume', [
    RUN_PROTOCOL_VERSION,
    r.id,
    r.runDir,
    r.runtimePid ? String(r.runtimePid) : '',
    ...(r.end ? [r.end.kind, String(r.end.value)] : []),
  ]);
}

export function parseResume(msg: RunMessage): ResumeRequest {
  const [version, id, runDir, pid, kind, value] = msg.fields;
  if (msg.verb !== 'resume') throw new InvalidArgumentError(`expected a resume request, got "${msg.verb}"`);
  if (version !== RUN_PROTOCOL_VERSION) {
    throw new InvalidArgumentError(
      `this daemon speaks run protocol ${RUN_PROTOCOL_VERSION}, the front end ${JSON.stringify(version)}`,
    );
  }
  if (!/^[0-9a-f]{64}$/.test(id ?? '') || !runDir?.startsWith('/') || !/^(|[0-9]{1,10})$/.test(pid ?? 'x')) {
    throw new InvalidArgumentError('malformed resume request: bad container id, run dir or pid');
  }
  const runtimePid = pid ? Number(pid) : undefined;
  const end = kind === undefined ? undefined : parseExited({ verb: 'exited', fields: [kind, value] });
  return { id, runDir, runtimePid: runtimePid && runtimePid > 1 ? runtimePid : undefined, end };
}

export function encodeExit(code: number, message = ''): Buffer {
  return encodeRunMessage('exit', [String(code), message]);
}

export function parseExit(msg: RunMessage): { code: number; message: string } {
  const code = Number(msg.fields[0]);
  if (msg.verb !== 'exit' || !Number.isInteger(code))
    throw new InvalidArgumentError('malformed exit message');
  return { code, message: msg.fields[1] ?? '' };
}
