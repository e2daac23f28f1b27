import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as C from '../../../src/mount/fuse/constants.js';
import { OPCODES, opcodeName, opcodeRow } from '../../../src/mount/fuse/opcodes.js';
import { FuseProtocol } from '../../../src/mount/fuse/protocol.js';
import type { RawFileSystem } from '../../../src/mount/fuse/raw.js';
import { encodeEntryOut, type FuseEntryOut } from '../../../src/mount/fuse/wire/attr.js';
import { encodeInitIn } from '../../../src/mount/fuse/wire/init.js';
import { encodeLseekIn, encodeLseekOut } from '../../../src/mount/fuse/wire/lseek.js';
import {
  decodeReadIn,
  encodeOpenIn,
  encodeOpenOut,
  encodeReadIn,
} from '../../../src/mount/fuse/wire/open.js';
import { encodeStatfsOut, type FuseKstatfs } from '../../../src/mount/fuse/wire/statfs.js';
import { errnoOf, name, reply, request } from './helpers.js';

async function ready(fs: RawFileSystem): Promise<FuseProtocol> {
  const p = new FuseProtocol(fs);
  const init = encodeInitIn({ major: 7, minor: 45, max_readahead: 0, flags: C.FUSE_INIT_EXT });
  assert.is(errnoOf(await p.handleRequest(request(C.FUSE_INIT, init))), 0);
  return p;
}

test('opcodeRow finds every row of OPCODES and nothing else', () => {
  for (let opcode = 0; opcode < 64; opcode++) {
    assert.is(opcodeRow(opcode), OPCODES.get(opcode), `opcode ${opcode}`);
  }
  for (const opcode of [C.CUSE_INIT, 0xffffffff, 2 ** 40, -1, 1.5]) assert.is(opcodeRow(opcode), undefined);
  assert.is(opcodeName(C.FUSE_READDIRPLUS), 'READDIRPLUS');
  assert.is(opcodeName(C.CUSE_INIT), 'OPCODE_4096');
});

test('every decoder reads only within its row input size', () => {
  for (const row of OPCODES.values()) {
    if (!row.decode) continue;
    // A message exactly inSize long passes the length check, so the decoder must not read past it.
    assert.not.throws(() => row.decode!(Buffer.alloc(row.inSize)), row.name);
  }
});

test('the columns fit together: no-reply rows have no encoder, mutating rows no handler', () => {
  const noReply = [...OPCODES.values()].filter((r) => r.noReply).map((r) => r.name);
  assert.equal(noReply.sort(), ['BATCH_FORGET', 'FORGET', 'INTERRUPT', 'NOTIFY_REPLY']);
  for (const row of OPCODES.values()) {
    if (row.noReply) assert.is(row.encode, undefined, row.name);
    // EROFS is answered before dispatch: a handler there would never run.
    if (row.mutating) assert.is(row.serve, undefined, row.name);
    if (row.encode) assert.ok(row.serve, `${row.name} encodes what no handler returns`);
  }
});

test('every opcode the kernel may send dispatches without a filesystem method: an errno, no warning', async () => {
  const p = await ready({});
  const warnings: unknown[] = [];
  p.on('warn', (w) => warnings.push(w));
  for (const [opcode, row] of OPCODES) {
    if (opcode === C.FUSE_INIT || opcode === C.FUSE_DESTROY) continue;
    const body = Buffer.concat([
      Buffer.alloc(row.inSize),
      ...Array.from({ length: row.names }, () => name('x')),
    ]);
    const out = await p.handleRequest(request(opcode, body));
    if (row.noReply) {
      assert.is(out, null, row.name);
      continue;
    }
    const errno = errnoOf(out);
    const want = row.mutating ? C.EROFS : opcode === C.FUSE_IOCTL ? C.ENOTTY : [0, C.ENOSYS];
    if (Array.isArray(want)) assert.ok(want.includes(errno), `${row.name}: errno ${errno}`);
    else assert.is(errno, want, row.name);
  }
  assert.equal(warnings, []);
});

test('the handler gets the decoded input and the reply body is the encoder applied to its result', async () => {
  const entry: FuseEntryOut = {
    nodeid: 5,
    generation: 0,
    entry_valid: 9,
    attr_valid: 9,
    entry_valid_nsec: 0,
    attr_valid_nsec: 0,
    attr: {
      ino: 5,
      size: 3,
      blocks: 1,
      atime: 1,
      mtime: 1,
      ctime: 1,
      atimensec: 0,
      mtimensec: 0,
      ctimensec: 0,
      mode: 0o100644,
      nlink: 1,
      uid: 0,
      gid: 0,
      rdev: 0,
      blksize: 4096,
      flags: 0,
    },
  };
  const statfs: FuseKstatfs = {
    blocks: 1,
    bfree: 0,
    bavail: 0,
    files: 2,
    ffree: 0,
    bsize: 4096,
    namelen: 255,
    frsize: 4096,
  };
  const readIn = { fh: 7, offset: 4096, size: 100, read_flags: 0, lock_owner: 3n, flags: 0 };
  const seen: unknown[] = [];
  const p = await ready({
    lookup: (_c, parent, n) => {
      seen.push([parent, n.toString()]);
      return entry;
    },
    open: async (_c, _n, inp) => {
      seen.push(inp);
      return { fh: 3, open_flags: C.FOPEN_KEEP_CACHE, backing_id: 0 };
    },
    read: (_c, _n, inp) => {
      seen.push(inp);
      return Buffer.from('bytes');
    },
    statfs: () => statfs,
    lseek: (_c, _n, inp) => inp.offset + 1,
  });
  const body = async (req: Buffer) => reply(await p.handleRequest(req)).body;
  assert.equal(await body(request(C.FUSE_LOOKUP, name('etc'), { nodeid: 1 })), encodeEntryOut(entry));
  assert.equal(
    await body(request(C.FUSE_OPEN, encodeOpenIn({ flags: 0, open_flags: 0 }))),
    encodeOpenOut({ fh: 3, open_flags: C.FOPEN_KEEP_CACHE, backing_id: 0 }),
  );
  assert.equal(await body(request(C.FUSE_READ, encodeReadIn(readIn))), Buffer.from('bytes'));
  assert.equal(await body(request(C.FUSE_STATFS)), encodeStatfsOut(statfs));
  assert.equal(
    await body(request(C.FUSE_LSEEK, encodeLseekIn({ fh: 0, offset: 99, whence: C.SEEK_DATA }))),
    encodeLseekOut({ offset: 100 }),
  );
  assert.equal(seen, [[1, 'etc'], { flags: 0, open_flags: 0 }, decodeReadIn(encodeReadIn(readIn))]);
});

test.run();
