// The wire protocol between the native hook executable (native/hook/strata-hook.c) and the
// daemon. Deliberately line-based so the C side needs no JSON parser: the hook sends
// "STRATA-HOOK 1 <stage>\n" and the OCI state JSON, then half-closes; the daemon answers with
// "ok\n" plus optional "key value" lines (and, for createContainer, the mount fd as
// SCM_RIGHTS), or a single "error <message>\n" line.
import { InvalidArgumentError } from '../errors.js';
import { HOOK_STAGES, type HookStage } from '../spec/hook-injection.js';

export interface HookRequest {
  stage: HookStage;
  /** The raw OCI state JSON as the runtime gave it to the hook. */
  stateJson: string;
}

const HEAD = /^STRATA-HOOK 1 ([A-Za-z]+)\n/;

/** Is this the start of a hook request (as opposed to a JSON API request)? */
export function isHookRequest(data: Buffer): boolean {
  return data.subarray(0, 12).toString('latin1') === 'STRATA-HOOK ';
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
  return Buffer.from(`STRATA-HOOK 1 ${req.stage}\n${req.stateJson}`);
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

export function encodeHookReply(reply: HookReplyOk | { ok: false; message: string }): Buffer {
  if (!reply.ok) return Buffer.from(`error ${oneLine(reply.message)}\n`);
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
export function decodeHookReply(data: Buffer): HookReplyOk | { ok: false; message: string } {
  const text = data.toString('utf8');
  if (text.startsWith('error ')) return { ok: false, message: text.slice(6).replace(/\n$/, '') };
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
