import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InvalidArgumentError } from '../../src/errors.js';
import { checkBindSources, parseMount, parseVolume } from '../../src/spec/options.js';

function invalid(fn: () => unknown, re: RegExp): void {
  try {
    fn();
    assert.unreachable();
  } catch (err) {
    assert.instance(err, InvalidArgumentError);
    assert.match((err as Error).message, re);
  }
}

test('-v SRC:DST is a recursive private read-write bind, as podman writes it', () => {
  assert.equal(parseVolume('/srv/data:/data'), {
    type: 'bind',
    source: '/srv/data',
    destination: '/data',
    options: ['rw', 'rprivate', 'rbind'],
  });
});

test('-v options: ro, propagation, nonrecursive bind, nosuid; z/Z ignored', () => {
  assert.equal(parseVolume('/a:/b/:ro,rshared,bind,nosuid,Z').options, ['ro', 'rshared', 'bind', 'nosuid']);
  assert.is(parseVolume('/a:/x/../b').destination, '/b');
});

test('-v DST alone is an anonymous tmpfs', () => {
  assert.equal(parseVolume('/cache'), {
    type: 'tmpfs',
    source: 'tmpfs',
    destination: '/cache',
    options: ['rw', 'rprivate', 'nosuid', 'nodev'],
  });
});

test('-v refuses named volumes, relative or root destinations, unknown options', () => {
  invalid(
    () => parseVolume('myvol:/data'),
    /source "myvol" must be an absolute host path \(strata has no named volumes\)/,
  );
  invalid(() => parseVolume('/a:data'), /destination "data" must be an absolute path/);
  invalid(() => parseVolume('/a:/'), /cannot be the root directory/);
  invalid(() => parseVolume('/a:/b:fast'), /unknown option "fast"/);
  invalid(() => parseVolume('/a::/b'), /is not SRC:DST/);
});

test('--mount type=bind with src/source, dst/destination/target, ro and propagation', () => {
  assert.equal(parseMount('type=bind,src=/a,dst=/b,ro'), {
    type: 'bind',
    source: '/a',
    destination: '/b',
    options: ['ro', 'rprivate', 'rbind'],
  });
  assert.equal(parseMount('type=bind,source=/a,target=/b,readonly=false,bind-propagation=rslave').options, [
    'rw',
    'rslave',
    'rbind',
  ]);
  assert.equal(parseMount('src=/a,destination=/b,readonly').options, ['ro', 'rprivate', 'rbind']);
});

test('--mount type=tmpfs with size and mode', () => {
  assert.equal(parseMount('type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1777'), {
    type: 'tmpfs',
    source: 'tmpfs',
    destination: '/t',
    options: ['rw', 'rprivate', 'nosuid', 'nodev', 'size=64m', 'mode=1777'],
  });
});

test('--mount errors name the spec and the field', () => {
  invalid(() => parseMount('type=bind,src=/a'), /mount "type=bind,src=\/a": no destination/);
  invalid(() => parseMount('type=bind,dst=/a'), /a bind mount needs src=/);
  invalid(() => parseMount('type=volume,dst=/a'), /type "volume" is not bind or tmpfs/);
  invalid(() => parseMount('type=bind,src=/a,dst=/b,colour=red'), /unknown field "colour"/);
  invalid(() => parseMount('type=tmpfs,dst=/b,tmpfs-size=lots'), /bad field "tmpfs-size=lots"/);
});

test('checkBindSources passes existing sources and tmpfs, and names a missing source', () => {
  const ok = [parseVolume('/tmp:/data'), parseVolume('/scratch'), parseMount('type=bind,src=/,dst=/host')];
  assert.is(checkBindSources(ok), ok);
  invalid(
    () => checkBindSources([parseVolume('/tmp:/a'), parseVolume('/no/such/strata-src:/data:ro')]),
    /^bind mount source \/no\/such\/strata-src \(for \/data\) does not exist$/,
  );
});

test.run();
