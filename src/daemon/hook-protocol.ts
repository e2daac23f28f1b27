// The wire protocol between the native hook executable (native/hook/strata-hook.c) and the
// daemon. Deliberately line-based so the C side needs no JSON parser: the hook sends
// "STRATA-HOOK 1 <stage>\n" and the OCI state JSON, then half-closes; the daemon answers with
// "ok\n" plus optional "key value" lines (and, for createContainer, the mount fd as
// SCM_RIGHTS), or an "error <message>\n" line and an "exit <code>\n" line: the code the hook
// exits with (HOOK_EXIT), chosen here so the hook decides nothing.
import { InvalidArgumentError, StrataError } from '../errors.js';
import { NATIVE_CONTRACT } from '../contract/generated/native-contract.js';
import { HOOK_STAGES, type HookStage } from '../spec/hook-injection.js';

/** The hook executable's exit codes (native/hook/strata-hook.c says when each happens). */
export const HOOK_EXIT = NATIVE_CONTRACT.hook.exit;
/** The state JSON the hook sends at most. */
export const MAX_HOOK_STATE = NATIVE_CONTRACT.hook.maxState;

export interface HookRequest {
  stage: HookStage;
  /** The raw OCI state JSON as the runtime gave it to the hook. */
  stateJson: string;
}

const MAGIC = `${NATIVE_CONTRACT.hook.magic} `;
const HEAD = new RegExp(`^${MAGIC}${NATIVE_CONTRACT.hook.version} ([A-Za-z]+)\n`);

/** Is this the start of a hook request (as opposed to a JSON API request)? */
export function isHookRequest(data: Buffer): boolean {
  return data.subarray(0, MAGIC.length).toString('latin1') === MAGIC;
}

export function decodeHookRequest(data: Buffer): HookRequest {
  const text = data.toString('utf8');
  const m = HEAD.exec(text);
  if (!m) throw new InvalidArgumentError('malformed hook request: bad header line');
  const stage = m[1] as HookStage;
  if (!HOOK_STAGES.includes(stage))
    throw new InvalidArgumentError(`unknown hook stage ${JSON.stringify(m[1])}`);
  return { stage, stateJson: text.slice(m[0].length) };
}

export function encodeHookRequest(req: HookRequest): Buffer {
  return Buffer.from(`${MAGIC}${NATIVE_CONTRACT.hook.version} ${req.stage}\n${req.stateJson}`);
}

export interface HookReplyOk {
  ok: true;
  /** createContainer: the absolute path of the rootfs the mount is attached over. */
  rootfs?: string;
  readonly?: boolean;
}

/** One line each: a newline in a value would let it forge another field. */
function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}

export interface HookReplyError {
  ok: false;
  message: string;
  /** The hook's exit code (HOOK_EXIT); "failed" when absent. */
  exitCode?: number;
}

/** A refusal's exit code: an image missing from the store (a NotFound naming a ref) is told apart. */
export function hookExitCode(err: unknown): number {
  return err instanceof StrataError && err.kind === 'NotFound' && err.ref !== undefined
    ? HOOK_EXIT.imageMissing
    : HOOK_EXIT.failed;
}

export function encodeHookReply(reply: HookReplyOk | HookReplyError): Buffer {
  if (!reply.ok) {
    const code = reply.exitCode;
    // The hook takes 1-125: above are the shell's "cannot execute", "not found" and signals.
    if (code !== undefined && !(Number.isInteger(code) && code >= 1 && code <= 125)) {
      throw new InvalidArgumentError(`${code} cannot be the hook's exit code`);
    }
    const exit = code === undefined ? '' : `exit ${code}\n`;
    return Buffer.from(`error ${oneLine(reply.message)}\n${exit}`);
  }
  let text = 'ok\n';
  if (reply.rootfs !== undefined) {
    if (!reply.rootfs.startsWith('/') || /[\r\n]/.test(reply.rootfs)) {
      throw new InvalidArgumentError(
        `rootfs path ${JSON.stringify(reply.rootfs)} cannot be sent to the hook`,
      );
    }
    text += `rootfs ${reply.rootfs}\n`;
  }
  if (reply.readonly) text += 'readonly 1\n';
  return Buffer.from(text);
}

/** The daemon never needs this; tests and the TypeScript fallback hook do. */
export function decodeHookReply(data: Buffer): HookReplyOk | HookReplyError {
  const text = data.toString('utf8');
  if (text.startsWith('error ')) {
    const [first, ...rest] = text.slice(6).split('\n');
    const exit = rest.find((line) => line.startsWith('exit '));
    return exit === undefined
      ? { ok: false, message: first }
      : { ok: false, message: first, exitCode: Number(exit.slice(5)) };
  }
  const lines = text.split('\n');
  if (lines[0] !== 'ok') throw new InvalidArgumentError('malformed hook reply');
  const reply: HookReplyOk = { ok: true };
  for (const line of lines.slice(1)) {
    const sp = line.indexOf(' ');
    if (sp < 0) continue;
    const key = line.slice(0, sp);
    const value = line.slice(sp + 1);
    if (key === 'rootfs') reply.rootfs = value;
    if (key === 'readonly') reply.readonly = value === '1';
  }
  return reply;
}
