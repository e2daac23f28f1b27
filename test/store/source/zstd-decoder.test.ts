// The zstd decoder child (issue 7 item 5): a frame declaring a window over the CLI's 128 MiB
// default is refused without the importer's memory growing; corrupt, truncated and non-zstd
// input fail naming the blob; destroying the stream kills and reaps the child.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InvalidArgumentError } from '../../../src/errors.js';
import { layerStream } from '../../../src/store/source/layer-stream.js';
import { sha256Digest } from '../../../src/store/source/digest.js';
import { ZstdDecoder } from '../../../src/store/source/zstd-decoder.js';
import { fdSnapshot, fdsLeftSince, waitFor } from '../../native/mini-fuse.js';
import { makeTar } from '../layer/helpers.js';

const zstd = (data: Buffer, ...args: string[]) =>
  execFileSync('zstd', ['-q', '-c', ...args], { input: data, maxBuffer: 1 << 30 });

async function sampleTar(): Promise<Buffer> {
  const lines = Array.from({ length: 40_000 }, (_, i) => `line ${i % 50} of a small layer\n`).join('');
  return makeTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/lines', body: lines },
  ]);
}

/** A frame whose header declares a 1.875 GiB window (exponent 20, mantissa 7) over small content. */
function windowBomb(tar: Buffer): Buffer {
  const frame = Buffer.from(zstd(tar, '-19')); // from stdin: no content size, so a window descriptor
  assert.is(frame[4] & 0x20, 0, 'not a single-segment frame');
  frame[5] = (20 << 3) | 7;
  return frame;
}

async function decode(input: Buffer, what = 'blob X'): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(Readable.from([input]), new ZstdDecoder(what), async (src: AsyncIterable<Buffer>) => {
    for await (const c of src) chunks.push(c);
  });
  return Buffer.concat(chunks);
}

async function decodeFails(input: Buffer): Promise<InvalidArgumentError> {
  try {
    await decode(input);
  } catch (err) {
    assert.instance(err, InvalidArgumentError, String(err));
    return err as InvalidArgumentError;
  }
  throw new Error('decoded');
}

test('round trip: what zstd compressed comes back byte for byte, no fd left', async () => {
  const tar = await sampleTar();
  const fds = fdSnapshot();
  assert.equal(await decode(zstd(tar, '-3')), tar);
  assert.equal(await decode(Buffer.concat([zstd(tar), zstd(tar)])), Buffer.concat([tar, tar]));
  assert.ok(await waitFor(() => fdsLeftSince(fds).length === 0), fdsLeftSince(fds).join(', '));
});

test('window bomb: refused naming the layer and both sizes, importer RSS stays flat', async () => {
  const tar = await sampleTar();
  const bomb = windowBomb(tar);
  assert.ok(bomb.length < 16 * 1024, `bomb is ${bomb.length} bytes`);
  const digest = sha256Digest(bomb);
  const base = process.memoryUsage().rss;
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  try {
    const out = layerStream(Readable.from([bomb]), {
      digest,
      size: bomb.length,
      diffId: sha256Digest(tar),
      compression: 'zstd',
      what: `layer ${digest} in test-source`,
    });
    let err: unknown;
    try {
      for await (const _ of out) void _;
    } catch (e) {
      err = e;
    }
    assert.instance(err, InvalidArgumentError, String(err));
    const msg = (err as Error).message;
    assert.match(msg, `layer ${digest} in test-source`);
    assert.match(msg, 'declares a 1920 MiB window, over the 128 MiB limit');
  } finally {
    clearInterval(sampler);
  }
  // fzstd allocated the declared window here: 1.6 GiB and more.
  assert.ok(peak - base < 64 * 2 ** 20, `RSS grew by ${((peak - base) / 2 ** 20).toFixed(0)} MiB`);
});

test('corrupt, truncated and non-zstd input: InvalidArgumentError saying which', async () => {
  const frame = zstd(await sampleTar(), '-3');
  const flipped = Buffer.from(frame);
  for (let i = 100; i < 200; i++) flipped[i] ^= 0xa5;
  const corrupt = await decodeFails(flipped);
  assert.match(corrupt.message, /^blob X: corrupt or truncated zstd data: /);
  const truncated = await decodeFails(frame.subarray(0, frame.length >> 1));
  assert.match(truncated.message, /^blob X: corrupt or truncated zstd data: .*premature end/);
  const gz = await decodeFails(Buffer.from('\x1f\x8b\x08\x00 this is gzip, not zstd'));
  assert.match(gz.message, 'not zstd data (bad magic number)');
});

test('destroyed mid-stream: the child is killed and reaped, no fd left', async () => {
  // Incompressible: zstd reads its input in blocks, so the child only writes once it has some.
  const big = zstd(randomBytes(8 * 2 ** 20), '-1');
  const fds = fdSnapshot();
  const dec = new ZstdDecoder('blob X');
  const pid = dec.pid!;
  assert.ok(pid > 0 && existsSync(`/proc/${pid}`));
  dec.write(big);
  await new Promise<void>((resolve) => dec.once('data', () => resolve()));
  const closed = new Promise<void>((resolve) => dec.once('close', () => resolve()));
  dec.destroy();
  await closed;
  // Reaped at 'close': not even a zombie is left.
  assert.not.ok(existsSync(`/proc/${pid}`), `zstd ${pid} still exists after close`);
  assert.ok(await waitFor(() => fdsLeftSince(fds).length === 0), fdsLeftSince(fds).join(', '));
});

test.run();
