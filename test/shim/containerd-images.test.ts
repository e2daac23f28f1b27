// The pure parts of src/shim/containerd-images.ts and its errors without containerd: image names
// bounded before they reach ctr's argv, containerd's root read from the content plugin's exports,
// a containerd that does not answer named in the error. (The imports themselves, concurrent and
// corrupt, run against real containerd in cri.test.ts.)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { InvalidArgumentError, UnavailableError } from '../../src/errors.js';
import { checkImageName, ContainerdImages, parseContentRoot } from '../../src/shim/containerd-images.js';
import {
  decodeContainerImage,
  decodeImageTarget,
  grpcFrame,
  grpcUnframe,
} from '../../src/shim/containerd-grpc.js';
import { create, toBinary } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import {
  GetContainerRequestSchema,
  GetContainerResponseSchema,
} from '../../src/proto/generated/github.com/containerd/containerd/api/services/containers/v1/containers_pb.js';

test('checkImageName: printable, bounded, no whitespace', () => {
  assert.is(checkImageName('docker.io/library/busybox:latest'), 'docker.io/library/busybox:latest');
  for (const bad of ['', 'a b', 'x\n--help', 'é', 'a'.repeat(513)]) {
    assert.throws(
      () => checkImageName(bad),
      (e: unknown) => e instanceof InvalidArgumentError,
      bad,
    );
  }
});

test("parseContentRoot: the content plugin's exported root, minus the plugin's directory", () => {
  const out = [
    'Type:         io.containerd.content.v1',
    'ID:           content',
    'Exports:     ',
    '              root      /var/lib/containerd/io.containerd.content.v1.content',
    '',
    'Type:         io.containerd.grpc.v1',
    'ID:           content',
  ].join('\n');
  assert.is(parseContentRoot(out), '/var/lib/containerd');
  assert.is(parseContentRoot('Type: io.containerd.grpc.v1\nID: content\n'), undefined);
  assert.is(parseContentRoot('              root      relative/io.containerd.content.v1.content'), undefined);
});

test("containerd's gRPC messages: frames, Container.image, Image.target; unknown fields skipped", () => {
  // GetContainerRequest{id = 1}: as containerd's Go client encodes it.
  const msg = toBinary(GetContainerRequestSchema, create(GetContainerRequestSchema, { id: 'abc' }));
  assert.equal([...msg], [0x0a, 3, 0x61, 0x62, 0x63]);
  assert.equal([...grpcUnframe(grpcFrame(msg))], [...msg]);
  assert.throws(() => grpcUnframe(Buffer.from([0, 0, 0])), /without a message/);
  assert.throws(() => grpcUnframe(Buffer.from([1, 0, 0, 0, 0])), /compressed/);
  assert.throws(() => grpcUnframe(Buffer.from([0, 0, 0, 0, 9, 1])), /malformed/);

  const descriptor = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string('application/vnd.oci.image.index.v1+json')
    .tag(2, WireType.LengthDelimited)
    .string(`sha256:${'a'.repeat(64)}`)
    .tag(3, WireType.Varint)
    .int64(1234)
    .tag(9, WireType.LengthDelimited)
    .string('a field this code does not know')
    .finish();
  const image = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string('x:1')
    .tag(2, WireType.LengthDelimited)
    .bytes(new BinaryWriter().tag(1, WireType.LengthDelimited).string('k').finish())
    .tag(3, WireType.LengthDelimited)
    .bytes(descriptor)
    .finish();
  const res = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(image).finish();
  assert.equal(decodeImageTarget(res), {
    mediaType: 'application/vnd.oci.image.index.v1+json',
    digest: `sha256:${'a'.repeat(64)}`,
    size: 1234,
  });
  assert.is(decodeImageTarget(new Uint8Array(0)), undefined);
  const huge = new BinaryWriter().tag(3, WireType.Varint).int64(-1).finish();
  const hugeRes = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .bytes(new BinaryWriter().tag(3, WireType.LengthDelimited).bytes(huge).finish())
    .finish();
  assert.throws(() => decodeImageTarget(hugeRes), /size -1/);

  const container = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string('c1')
    .tag(3, WireType.LengthDelimited)
    .string('docker.io/library/busybox:latest')
    .finish();
  const cres = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(container).finish();
  // The generated encoder agrees with the hand-written bytes.
  assert.equal(
    [
      ...toBinary(
        GetContainerResponseSchema,
        create(GetContainerResponseSchema, {
          container: { id: 'c1', image: 'docker.io/library/busybox:latest' },
        }),
      ),
    ],
    [...cres],
  );
  assert.is(decodeContainerImage(cres), 'docker.io/library/busybox:latest');
  assert.is(decodeContainerImage(new Uint8Array(0)), '');
  // A truncated message is an error, not a wrong answer.
  assert.throws(() => decodeContainerImage(cres.subarray(0, cres.length - 3)), /malformed/);
  // A field of the wrong wire type is malformed too.
  const wrong = new BinaryWriter().tag(1, WireType.Varint).int32(5).finish();
  assert.throws(() => decodeContainerImage(wrong), /malformed containerd.services.containers.v1/);
});

test('forTask: a containerd that does not answer is named, within seconds', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-ctdimg-'));
  try {
    const images = new ContainerdImages({ storeRoot: join(dir, 'store') });
    const bundle = join(dir, 'bundle');
    mkdirSync(bundle);
    const annotate = (name: string): void =>
      writeFileSync(
        join(bundle, 'config.json'),
        JSON.stringify({ annotations: { 'io.kubernetes.cri.image-name': name } }),
      );
    const req = {
      address: join(dir, 'none.sock'),
      namespace: 'k8s.io',
      id: 'c1',
      imageName: 'localhost/x:1',
    };
    annotate('localhost/x:1');
    try {
      await images.forTask(req);
      assert.unreachable();
    } catch (err) {
      assert.instance(err, UnavailableError, String(err));
      assert.match((err as Error).message, `containerd at ${req.address} did not list its plugins`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
