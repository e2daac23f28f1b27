import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InvalidArgumentError } from '../../src/errors.js';
import { parseGroup, parsePasswd, resolveUser } from '../../src/spec/user.js';

const PASSWD =
  '# comment\nroot:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\nbroken line\nsvc:x:998:998::/var/svc:/usr/sbin/nologin\n';
const GROUP = 'root:x:0:\nbob:x:1000:\nwheel:x:10:bob,svc\naudio:x:29:svc, bob\nwheel2:x:10:bob\n';
const image = (passwd?: string, group?: string) => (p: string) =>
  p === '/etc/passwd' && passwd !== undefined
    ? Buffer.from(passwd)
    : p === '/etc/group' && group !== undefined
      ? Buffer.from(group)
      : undefined;
const full = image(PASSWD, GROUP);

function invalid(fn: () => unknown, re: RegExp): void {
  try {
    fn();
    assert.unreachable();
  } catch (err) {
    assert.instance(err, InvalidArgumentError);
    assert.match((err as Error).message, re);
  }
}

test('parsers skip comments and malformed lines', () => {
  assert.equal(
    parsePasswd(PASSWD).map((p) => p.name),
    ['root', 'bob', 'svc'],
  );
  assert.equal(parseGroup(GROUP)[3], { name: 'audio', gid: 29, members: ['svc', 'bob'] });
});

test('empty user is root', () => {
  assert.equal(resolveUser('', full), { uid: 0, gid: 0, additionalGids: [], home: '/root', name: 'root' });
  assert.equal(resolveUser('', image()), {
    uid: 0,
    gid: 0,
    additionalGids: [],
    home: undefined,
    name: undefined,
  });
});

test('a name gives uid, gid, home and supplementary groups from /etc/group membership', () => {
  assert.equal(resolveUser('bob', full), {
    uid: 1000,
    gid: 1000,
    additionalGids: [10, 29],
    home: '/home/bob',
    name: 'bob',
  });
});

test('a numeric uid listed in passwd resolves like its name', () => {
  assert.equal(resolveUser('998', full), {
    uid: 998,
    gid: 998,
    additionalGids: [10, 29],
    home: '/var/svc',
    name: 'svc',
  });
});

test('a numeric uid absent from passwd is allowed, with gid 0 and no home', () => {
  assert.equal(resolveUser('4242', full), {
    uid: 4242,
    gid: 0,
    additionalGids: [],
    home: undefined,
    name: undefined,
  });
  assert.equal(resolveUser('4242:77', image()), {
    uid: 4242,
    gid: 77,
    additionalGids: [],
    home: undefined,
    name: undefined,
  });
});

test('user:group sets the gid by name or number, and then no supplementary groups', () => {
  assert.equal(resolveUser('bob:wheel', full).gid, 10);
  assert.equal(resolveUser('bob:wheel', full).additionalGids, []);
  assert.equal(resolveUser('1000:29', full).gid, 29);
});

test('unknown names are errors naming the image file', () => {
  invalid(
    () => resolveUser('alice', full),
    /^user "alice" not found: it is not in the image's \/etc\/passwd$/,
  );
  invalid(() => resolveUser('alice', image()), /^user "alice" not found: the image has no \/etc\/passwd$/);
  invalid(
    () => resolveUser('bob:staff', full),
    /^group "staff" not found: it is not in the image's \/etc\/group$/,
  );
  invalid(() => resolveUser('bob:staff', image(PASSWD)), /the image has no \/etc\/group/);
  invalid(() => resolveUser('a:b:c', full), /is not USER, UID, USER:GROUP or UID:GID/);
  invalid(() => resolveUser('bob:', full), /is not USER/);
});

test.run();
