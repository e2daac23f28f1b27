// The VM agent protocol, bytes only (no streams, no timers): frame encoding, a streaming decoder
// that drops stale bytes until its session's HELLO, and the EXEC/EXIT/... payload codecs. Both
// ends speak it: src/vm/agent-session.ts on the host, native/vm/strata-agent.c in the guest. The
// constants are in src/contract/native-contract.json (`vm`); docs/architecture.md#vm-guests.
import { NATIVE_CONTRACT } from '../contract/generated/native-contract.js';
import { InvalidArgumentError } from '../errors.js';
import type { FastPathGeometry } from '../native-addon.js';

export const VM = NATIVE_CONTRACT.vm;
export const FRAME = VM.frame;
export const HEADER_SIZE = VM.headerSize;
export const MAX_PAYLOAD = VM.maxPayload;

export type FrameType = (typeof FRAME)[keyof typeof FRAME];

export interface Frame {
  type: number;
  flags: number;
  session: number;
  channel: number;
  payload: Buffer;
}

/** A peer broke the protocol: the connection cannot be trusted past this point. */
export class ProtocolError extends InvalidArgumentError {
  constructor(message: string) {
    super(`VM agent protocol: ${message}`, { op: 'vm-protocol' });
  }
}

export function encodeFrame(type: number, session: number, channel: number, payload: Buffer = EMPTY): Buffer {
  if (payload.length > MAX_PAYLOAD)
    throw new ProtocolError(`frame of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  const out = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  out.writeUInt16LE(VM.magic, 0);
  out.writeUInt8(type, 2);
  out.writeUInt8(0, 3);
  out.writeUInt32LE(session >>> 0, 4);
  out.writeUInt32LE(channel >>> 0, 8);
  out.writeUInt32LE(payload.length, 12);
  payload.copy(out, HEADER_SIZE);
  return out;
}

const EMPTY = Buffer.alloc(0);

/** The session id both ends stamp on every frame after HELLO: the nonce's low 32 bits, never 0. */
export function sessionOf(nonce: bigint): number {
  return Number(nonce & 0xffffffffn) || 1;
}

export interface Hello {
  version: number;
  nonce: bigint;
  /** The agent's description of itself (arch, kernel), empty from the host. */
  info: string;
}

export function encodeHello(h: Hello): Buffer {
  const info = Buffer.from(h.info, 'utf8');
  const out = Buffer.alloc(16 + info.length);
  out.writeUInt32LE(h.version, 0);
  out.writeBigUInt64LE(h.nonce, 8);
  info.copy(out, 16);
  return out;
}

export function decodeHello(p: Buffer): Hello {
  if (p.length < 16 || p.length > 4096) throw new ProtocolError(`HELLO of ${p.length} bytes`);
  return { version: p.readUInt32LE(0), nonce: p.readBigUInt64LE(8), info: p.subarray(16).toString('utf8') };
}

/**
 * Splits a byte stream into frames. Until `expect(session)` is called and a frame of that
 * session arrives, it is hunting: anything that is not a well-formed HELLO of the expected session
 * is stale (bytes of an earlier connection still in the port) and is skipped a byte at a time.
 * Once synchronized, a bad magic or an oversized length is a ProtocolError, and a frame of
 * another session is counted and dropped.
 */
export class FrameDecoder {
  private buf: Buffer = EMPTY;
  private session = -1;
  private synced = false;
  /** Bytes and frames skipped as stale, for tests and logs. */
  staleBytes = 0;
  staleFrames = 0;

  /** The session the peer's HELLO must carry. */
  expect(session: number): void {
    this.session = session >>> 0;
    this.synced = false;
  }

  /** The agent's side: its HELLO answer starts `session`, and the stream stays in sync. */
  adopt(session: number): void {
    this.session = session >>> 0;
    this.synced = true;
  }

  get isSynced(): boolean {
    return this.synced;
  }

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const frames: Frame[] = [];
    let off = 0;
    for (;;) {
      if (this.buf.length - off < HEADER_SIZE) break;
      const magic = this.buf.readUInt16LE(off);
      const type = this.buf.readUInt8(off + 2);
      const session = this.buf.readUInt32LE(off + 4);
      const length = this.buf.readUInt32LE(off + 12);
      if (!this.synced) {
        const candidate =
          magic === VM.magic &&
          type === FRAME.hello &&
          session === this.session &&
          length <= 4096 &&
          length >= 16;
        if (!candidate) {
          off += 1;
          this.staleBytes += 1;
          continue;
        }
      } else {
        if (magic !== VM.magic) throw new ProtocolError(`bad frame magic 0x${magic.toString(16)}`);
        if (length > MAX_PAYLOAD) throw new ProtocolError(`frame of ${length} bytes exceeds ${MAX_PAYLOAD}`);
      }
      if (this.buf.length - off < HEADER_SIZE + length) break;
      const frame: Frame = {
        type,
        flags: this.buf.readUInt8(off + 3),
        session,
        channel: this.buf.readUInt32LE(off + 8),
        // A copy: the decoder's buffer is reused.
        payload: Buffer.from(this.buf.subarray(off + HEADER_SIZE, off + HEADER_SIZE + length)),
      };
      off += HEADER_SIZE + length;
      if (!this.synced) {
        this.synced = true;
      } else if (session !== this.session) {
        this.staleFrames += 1;
        continue;
      }
      frames.push(frame);
    }
    this.buf = off === 0 ? this.buf : Buffer.from(this.buf.subarray(off));
    return frames;
  }
}

export const KIND = VM.kind;

export function channelOf(proc: number, kind: number): number {
  return ((proc << 2) | kind) >>> 0;
}

export function splitChannel(channel: number): { proc: number; kind: number } {
  return { proc: channel >>> 2, kind: channel & 3 };
}

export interface ExecSpec {
  argv: string[];
  env: string[];
  cwd?: string;
  uid?: number;
  gid?: number;
  /** Serve the process's root from the host over this process's FUSE channel. */
  fuseRoot?: boolean;
  /** Or run in this guest directory as root (tests, the guest's own tools). */
  rootPath?: string;
  tty?: { rows: number; cols: number };
  hostname?: string;
  /** A tmpfs-backed overlay over the FUSE root, so the container can write (docker's default). */
  writable?: boolean;
  /** Client to VM host only: the store ref whose tree becomes the FUSE root. */
  image?: string;
  /** An OCI config.json (root.path "rootfs"): the agent runs the process under crun, whose
   * createContainer hook attaches the FUSE root (docs/architecture.md#vm-guests). */
  config?: string;
  /** The process's root's metadata is answered in the guest from a tree the agent holds
   * (TREE frames sent before this EXEC; agent to host: never). */
  tree?: ExecTree;
  /** Client to VM host only: the process outlives the client (`run -d`); its output goes to a log
   * in the VM's state dir, and the client gets the container's id on stdout. */
  detach?: boolean;
}

/** The crun container id the agent gives a process's container (strata-agent.c do_exec). */
export function guestContainerId(session: number, proc: number): string {
  return `strata-${(session >>> 0).toString(16).padStart(8, '0')}-${proc}`;
}

/** An EXEC's tree record: which tree (TREE frames) and how the fast path answers from it. */
export interface ExecTree {
  id: number;
  entryTimeout: number;
  attrTimeout: number;
  /** GETXATTR answers ENOSYS (the image has no xattrs). */
  xattrEnosys: boolean;
  geometry: FastPathGeometry;
  /** Inode numbers the host answers (placeholders and the directories they change). */
  deferred: number[];
}

/** The geometry's fields in the order the agent reads them (native/vm/agent-fast-path.h). */
const GEOMETRY_ORDER = [
  'inodeCount',
  'direntCount',
  'xattrCount',
  'poolSize',
  'inodesOff',
  'direntsOff',
  'xattrsOff',
  'poolOff',
  'objectCount',
  'objectsOff',
] as const satisfies readonly (keyof FastPathGeometry)[];

const TREE_RECORD_FIXED = 16 + 4 * GEOMETRY_ORDER.length;
const TREE_CHUNK_HEAD = 16;

export function encodeTreeRecord(t: ExecTree): Buffer {
  const b = Buffer.alloc(TREE_RECORD_FIXED + 4 * t.deferred.length);
  b.writeUInt32LE(t.id, 0);
  b.writeUInt32LE(t.entryTimeout, 4);
  b.writeUInt32LE(t.attrTimeout, 8);
  b.writeUInt32LE(t.xattrEnosys ? 1 : 0, 12);
  GEOMETRY_ORDER.forEach((k, i) => b.writeUInt32LE(t.geometry[k], 16 + 4 * i));
  t.deferred.forEach((ino, i) => b.writeUInt32LE(ino, TREE_RECORD_FIXED + 4 * i));
  return b;
}

export function decodeTreeRecord(v: Buffer): ExecTree {
  if (v.length < TREE_RECORD_FIXED || (v.length - TREE_RECORD_FIXED) % 4 !== 0)
    throw new ProtocolError(`tree record of ${v.length} bytes`);
  const geometry = {} as FastPathGeometry;
  GEOMETRY_ORDER.forEach((k, i) => (geometry[k] = v.readUInt32LE(16 + 4 * i)));
  const deferred: number[] = [];
  for (let off = TREE_RECORD_FIXED; off < v.length; off += 4) deferred.push(v.readUInt32LE(off));
  return {
    id: v.readUInt32LE(0),
    entryTimeout: v.readUInt32LE(4),
    attrTimeout: v.readUInt32LE(8),
    xattrEnosys: (v.readUInt32LE(12) & 1) === 1,
    geometry,
    deferred,
  };
}

/** TREE frame payloads carrying a tree index to the agent, in order: {u32 id, u32 total, u32
 * offset, u32 0} + up to a frame's worth of its bytes. */
export function encodeTreeChunks(id: number, index: Buffer): Buffer[] {
  if (index.length === 0 || index.length > VM.tree.maxBytes)
    throw new InvalidArgumentError(`a tree index of ${index.length} bytes cannot go to the VM`, {
      op: 'vm-tree',
    });
  const step = MAX_PAYLOAD - TREE_CHUNK_HEAD;
  const out: Buffer[] = [];
  for (let off = 0; off < index.length; off += step) {
    const part = index.subarray(off, Math.min(index.length, off + step));
    const head = Buffer.alloc(TREE_CHUNK_HEAD);
    head.writeUInt32LE(id, 0);
    head.writeUInt32LE(index.length, 4);
    head.writeUInt32LE(off, 8);
    out.push(Buffer.concat([head, part]));
  }
  return out;
}

const MAX_EXEC = 256 * 1024;

function record(key: number, value: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(key, 0);
  head.writeUInt32LE(value.length, 1);
  return Buffer.concat([head, value]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

/** Strings go NUL-free: the agent hands them to execve. */
function cstr(what: string, s: string): Buffer {
  if (s.includes('\0')) throw new InvalidArgumentError(`${what} contains a NUL byte`, { op: 'vm-exec' });
  return Buffer.from(s, 'utf8');
}

export function encodeExec(spec: ExecSpec): Buffer {
  const K = VM.key;
  if (spec.argv.length === 0) throw new InvalidArgumentError('no command to run', { op: 'vm-exec' });
  const parts: Buffer[] = [];
  for (const a of spec.argv) parts.push(record(K.argv, cstr('an argument', a)));
  for (const e of spec.env) parts.push(record(K.env, cstr('an environment variable', e)));
  if (spec.cwd !== undefined) parts.push(record(K.cwd, cstr('the working directory', spec.cwd)));
  if (spec.uid !== undefined) parts.push(record(K.uid, u32(spec.uid)));
  if (spec.gid !== undefined) parts.push(record(K.gid, u32(spec.gid)));
  if (spec.fuseRoot) parts.push(record(K.fuseRoot, EMPTY));
  if (spec.writable) parts.push(record(K.writable, EMPTY));
  if (spec.rootPath !== undefined) parts.push(record(K.rootPath, cstr('the root path', spec.rootPath)));
  if (spec.hostname !== undefined) parts.push(record(K.hostname, cstr('the hostname', spec.hostname)));
  if (spec.tty) parts.push(record(K.tty, encodeResize(spec.tty)));
  if (spec.image !== undefined) parts.push(record(K.image, cstr('the image', spec.image)));
  if (spec.config !== undefined) parts.push(record(K.config, cstr('the config', spec.config)));
  if (spec.tree !== undefined) parts.push(record(K.tree, encodeTreeRecord(spec.tree)));
  if (spec.detach) parts.push(record(K.detach, EMPTY));
  const out = Buffer.concat(parts);
  if (out.length > MAX_EXEC)
    throw new InvalidArgumentError(`the command and its environment exceed ${MAX_EXEC} bytes`);
  return out;
}

/** The host never receives EXEC; this decoder exists so tests can check what the agent parses. */
export function decodeExec(p: Buffer): ExecSpec {
  const K = VM.key;
  const spec: ExecSpec = { argv: [], env: [] };
  let off = 0;
  while (off < p.length) {
    if (p.length - off < 5) throw new ProtocolError('truncated EXEC record');
    const key = p.readUInt8(off);
    const len = p.readUInt32LE(off + 1);
    if (len > p.length - off - 5) throw new ProtocolError('EXEC record overruns its frame');
    const v = p.subarray(off + 5, off + 5 + len);
    off += 5 + len;
    if (key === K.argv) spec.argv.push(v.toString('utf8'));
    else if (key === K.env) spec.env.push(v.toString('utf8'));
    else if (key === K.cwd) spec.cwd = v.toString('utf8');
    else if (key === K.uid) spec.uid = decodeU32('EXEC uid', v);
    else if (key === K.gid) spec.gid = decodeU32('EXEC gid', v);
    else if (key === K.fuseRoot) spec.fuseRoot = true;
    else if (key === K.writable) spec.writable = true;
    else if (key === K.rootPath) spec.rootPath = v.toString('utf8');
    else if (key === K.hostname) spec.hostname = v.toString('utf8');
    else if (key === K.tty) spec.tty = decodeResize(v);
    else if (key === K.image) spec.image = v.toString('utf8');
    else if (key === K.config) spec.config = v.toString('utf8');
    else if (key === K.tree) spec.tree = decodeTreeRecord(v);
    else if (key === K.detach) spec.detach = true;
  }
  return spec;
}

export function encodeResize(size: { rows: number; cols: number }): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(Math.min(size.rows, 0xffff), 0);
  b.writeUInt16LE(Math.min(size.cols, 0xffff), 2);
  return b;
}

export function decodeResize(p: Buffer): { rows: number; cols: number } {
  if (p.length !== 4) throw new ProtocolError(`RESIZE of ${p.length} bytes`);
  return { rows: p.readUInt16LE(0), cols: p.readUInt16LE(2) };
}

export interface ExitStatus {
  /** The exit code, or 128 + the signal that killed it (what a shell reports). */
  code: number;
  signal?: number;
}

export function encodeExit(s: ExitStatus): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32LE(s.code, 0);
  b.writeUInt32LE(s.signal ?? 0, 4);
  return b;
}

export function decodeExit(p: Buffer): ExitStatus {
  if (p.length !== 8) throw new ProtocolError(`EXIT of ${p.length} bytes`);
  const signal = p.readUInt32LE(4);
  return signal ? { code: p.readInt32LE(0), signal } : { code: p.readInt32LE(0) };
}

export { u32 as encodeU32 };

export function decodeU32(what: string, p: Buffer): number {
  if (p.length !== 4) throw new ProtocolError(`${what} of ${p.length} bytes`);
  return p.readUInt32LE(0);
}
