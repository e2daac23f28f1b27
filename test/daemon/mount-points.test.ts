import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { placeholdersFor } from '../../src/daemon/mount-points.js';

const isDir = (p: string) => (p === '/etc/hosts' ? false : p === '/missing' ? undefined : true);

test('every mount destination gets a placeholder: files for binds of files, dirs otherwise', () => {
  const specs = placeholdersFor(
    [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/etc/hosts', type: 'bind', source: '/etc/hosts', options: ['bind', 'ro'] },
      { destination: '/data', source: '/srv/data', options: ['rbind'] },
      { destination: '/gone', type: 'bind', source: '/missing' },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs' },
    ],
    isDir,
  );
  assert.equal(specs, [
    { path: '/proc', type: 'dir' },
    { path: '/etc/hosts', type: 'file' },
    { path: '/data', type: 'dir' },
    { path: '/gone', type: 'dir' },
    { path: '/tmp', type: 'dir' },
  ]);
});

test('no mounts, no placeholders; "/" and relative destinations are skipped', () => {
  assert.equal(placeholdersFor(undefined, isDir), []);
  assert.equal(placeholdersFor([{ destination: '/' }, { destination: 'rel' }], isDir), []);
});

test.run();
