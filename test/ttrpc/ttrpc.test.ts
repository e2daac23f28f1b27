// The ttrpc framing, server and client over a real unix socket: chunking, concurrency (a slow
// call never holds up a fast one), and hostile frames answered with a status, not a crash.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { RequestSchema, ResponseSchema } from '../../src/proto/generated/ttrpc_pb.js';
import {
  encodeFrame,
  FrameDecoder,
  HEADER_LENGTH,
  isOversized,
  MAX_MESSAGE_LENGTH,
  MESSAGE_TYPE_REQUEST,
  type Frame,
} from '../../src/ttrpc/frame.js';
import { serveTtrpc, type Handler } from '../../src/ttrpc/server.js';
import { TtrpcClient } from '../../src/ttrpc/client.js';
import { Code, TtrpcError } from '../../src/ttrpc/status.js';

const dir = mkdtempSync(join(tmpdir(), 'strata-ttrpc-test-'));
const sock = join(dir, 's');
let server: Server;
const conns = new Set<Socket>();
const aborted: string[] = [];

const handlers = new Map<string, Handler>([
  ['t.S/Echo', async (p) => p],
  [
    't.S/Slow',
    (p, ctx) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => resolve(p), 300);
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          aborted.push(Buffer.from(p).toString());
          reject(new Error('aborted'));
        });
      }),
  ],
  [
    't.S/Fail',
    async () => {
      throw new TtrpcError(Code.NotFound, 'no such thing');
    },
  ],
  ['t.S/Meta', async (_p, ctx) => Buffer.from(ctx.metadata.get('ns')?.join(',') ?? '')],
]);

test.before(async () => {
  server = createServer((s) => {
    conns.add(s);
    s.once('close', () => conns.delete(s));
    serveTtrpc(s, { handlers });
  });
  await new Promise<void>((r) => server.listen(sock, r));
});

test.after(async () => {
  for (const s of conns) s.destroy();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

test('frames round-trip whatever the chunking', () => {
  const bodies = [Buffer.alloc(0), Buffer.from('hello'), Buffer.alloc(70_000, 7)];
  const wire = Buffer.concat(bodies.map((b, i) => encodeFrame(2 * i + 1, MESSAGE_TYPE_REQUEST, b)));
  for (const step of [1, 3, 10, 4096, wire.length]) {
    const d = new FrameDecoder();
    const got: Frame[] = [];
    for (let i = 0; i < wire.length; i += step) got.push(...(d.push(wire.subarray(i, i + step)) as Frame[]));
    assert.is(got.length, 3, `step ${step}`);
    got.forEach((f, i) => {
      assert.is(f.streamId, 2 * i + 1);
      assert.is(f.type, MESSAGE_TYPE_REQUEST);
      assert.ok(f.body.equals(bodies[i]));
    });
    assert.is(d.pending, 0);
  }
  const head = encodeFrame(5, 2, Buffer.from('x'));
  assert.is(head.length, HEADER_LENGTH + 1);
  assert.is(head.readUInt32BE(0), 1);
  assert.is(head.readUInt32BE(4), 5);
  assert.is(head[8], 2);
  assert.throws(() => encodeFrame(1, 1, Buffer.alloc(MAX_MESSAGE_LENGTH + 1)), /over the/);
});

test('an oversized body is skipped as it streams, and the next frame still decodes', () => {
  const d = new FrameDecoder();
  const head = Buffer.alloc(HEADER_LENGTH);
  head.writeUInt32BE(MAX_MESSAGE_LENGTH + 100, 0);
  head.writeUInt32BE(3, 4);
  head[8] = MESSAGE_TYPE_REQUEST;
  const out = d.push(head);
  assert.is(out.length, 1);
  assert.ok(isOversized(out[0]));
  assert.is(d.push(Buffer.alloc(MAX_MESSAGE_LENGTH)).length, 0);
  const next = d.push(Buffer.concat([Buffer.alloc(100), encodeFrame(5, 1, Buffer.from('ok'))]));
  assert.is(next.length, 1);
  assert.is((next[0] as Frame).body.toString(), 'ok');
});

test('concurrent calls on one connection: a slow call does not hold up a fast one', async () => {
  const c = await TtrpcClient.connect(`unix://${sock}`);
  const order: string[] = [];
  const slow = c
    .callRaw('t.S', 'Slow', Buffer.from('slow'))
    .then((b) => order.push(Buffer.from(b).toString()));
  const fast = c
    .callRaw('t.S', 'Echo', Buffer.from('fast'))
    .then((b) => order.push(Buffer.from(b).toString()));
  await Promise.all([slow, fast]);
  assert.equal(order, ['fast', 'slow']);
  const meta = await c.callRaw('t.S', 'Meta', new Uint8Array(0), { metadata: { ns: 'k8s.io' } });
  assert.is(Buffer.from(meta).toString(), 'k8s.io');
  c.close();
});

test('errors come back as status codes; unknown methods are Unimplemented', async () => {
  const c = await TtrpcClient.connect(sock);
  const err = await c.callRaw('t.S', 'Fail', new Uint8Array(0)).catch((e: unknown) => e);
  assert.instance(err, TtrpcError);
  assert.is((err as TtrpcError).code, Code.NotFound);
  assert.is((err as TtrpcError).message, 'no such thing');
  const un = await c.callRaw('t.S', 'Nope', new Uint8Array(0)).catch((e: unknown) => e);
  assert.is((un as TtrpcError).code, Code.Unimplemented);
  c.close();
});

/** Raw bytes to the server; the decoded responses that come back. */
async function raw(
  bytes: Buffer,
  expect: number,
): Promise<{ streamId: number; code: number; message: string }[]> {
  const s = connect(sock);
  const d = new FrameDecoder();
  const got: { streamId: number; code: number; message: string }[] = [];
  await new Promise<void>((resolve, reject) => {
    s.on('data', (data: Buffer) => {
      for (const f of d.push(data) as Frame[]) {
        const r = fromBinary(ResponseSchema, f.body);
        got.push({ streamId: f.streamId, code: r.status?.code ?? 0, message: r.status?.message ?? '' });
      }
      if (got.length >= expect) resolve();
    });
    s.on('error', reject);
    s.write(bytes);
  });
  s.destroy();
  return got;
}

function request(streamId: number, method: string, payload = Buffer.alloc(0)): Buffer {
  const body = toBinary(RequestSchema, create(RequestSchema, { service: 't.S', method, payload }));
  return encodeFrame(streamId, MESSAGE_TYPE_REQUEST, body);
}

test('hostile frames get a status on their stream and the connection goes on', async () => {
  const over = Buffer.alloc(HEADER_LENGTH);
  over.writeUInt32BE(MAX_MESSAGE_LENGTH + 1, 0);
  over.writeUInt32BE(1, 4);
  over[8] = MESSAGE_TYPE_REQUEST;
  const got = await raw(
    Buffer.concat([
      over,
      Buffer.alloc(MAX_MESSAGE_LENGTH + 1),
      encodeFrame(3, MESSAGE_TYPE_REQUEST, Buffer.from([0xff, 0xff, 0xff])), // not a Request
      request(4, 'Echo'), // even id
      request(7, 'Echo', Buffer.from('still here')),
    ]),
    4,
  );
  const by = new Map(got.map((g) => [g.streamId, g]));
  assert.is(by.get(1)?.code, Code.ResourceExhausted);
  assert.is(by.get(3)?.code, Code.InvalidArgument);
  assert.match(by.get(3)?.message ?? '', /malformed ttrpc request/);
  assert.is(by.get(4)?.code, Code.InvalidArgument);
  assert.is(by.get(7)?.code, Code.OK);
});

test('a client that disconnects mid-request aborts it; the server keeps serving', async () => {
  const s = connect(sock);
  await new Promise((r) => s.once('connect', r));
  s.write(request(1, 'Slow', Buffer.from('cut')));
  await new Promise((r) => setTimeout(r, 50));
  s.destroy();
  for (let i = 0; i < 50 && !aborted.includes('cut'); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(aborted.includes('cut'), 'the handler saw the abort');
  const c = await TtrpcClient.connect(sock);
  assert.is(Buffer.from(await c.callRaw('t.S', 'Echo', Buffer.from('x'))).toString(), 'x');
  c.close();
  const closed = await c.callRaw('t.S', 'Echo', Buffer.from('x')).catch((e: unknown) => e);
  assert.instance(closed, Error);
});

test('the generated messages match the .proto files (npm run gen:proto --check)', () => {
  const r = spawnSync(process.execPath, ['scripts/gen-proto.mjs', '--check'], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
});

test.run();
