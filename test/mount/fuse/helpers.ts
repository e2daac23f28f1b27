// Test helpers: hand-built kernel requests (fuse_in_header + body) and reply parsing.
import {
  decodeOutHeader,
  encodeInHeader,
  FUSE_IN_HEADER_SIZE,
  type FuseOutHeader,
} from '../../../src/mount/fuse/wire/header.js';

let nextUnique = 1000n;

export function request(
  opcode: number,
  body: Buffer = Buffer.alloc(0),
  opts: { nodeid?: number; unique?: bigint } = {},
): Buffer {
  const unique = opts.unique ?? nextUnique++;
  const header = encodeInHeader({
    len: FUSE_IN_HEADER_SIZE + body.length,
    opcode,
    unique,
    nodeid: opts.nodeid ?? 1,
    uid: 0,
    gid: 0,
    pid: 42,
    total_extlen: 0,
  });
  return Buffer.concat([header, body]);
}

export function reply(buf: Buffer | null): { header: FuseOutHeader; body: Buffer } {
  if (!buf) throw new Error('expected a reply, got none');
  const header = decodeOutHeader(buf);
  if (header.len !== buf.length) throw new Error(`reply len ${header.len} != buffer length ${buf.length}`);
  return { header, body: buf.subarray(16) };
}

/** The errno of an error reply (0 for success). */
export function errnoOf(buf: Buffer | null): number {
  return -reply(buf).header.error;
}

/** Hex fixtures may carry spaces and newlines for readability. */
export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

export function name(s: string): Buffer {
  return Buffer.from(s + '\0');
}
