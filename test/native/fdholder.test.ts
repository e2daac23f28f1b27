// strata-fdholder (native/holder/strata-fdholder.c) through its client (src/daemon/fd-holder.ts):
// it keeps fds a peer gives it across that peer's end, hands copies back to the next peer, drops
// them on request, refuses malformed requests, and exits once it holds nothing and nobody is
// connected. unixConnectSeqpacket (native/src/fds.c) is what the client connects with.
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { FdHolder } from '../../src/daemon/fd-holder.js';
import { native } from '../../src/native-addon.js';
import { fdSnapshot, fdsLeftSince } from './mini-fuse.js';

async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/** Pids of holders serving `sock`. */
function holderPids(sock: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^[0-9]+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(sock);
      } catch {
        return false;
      }
    })
    .map(Number);
}

test('holds fds across its peers, hands copies back, drops them, exits when empty and alone', async () => {
  const fds = fdSnapshot();
  const dir = mkdtempSync(join(tmpdir(), 'strata-fdh-'));
  const sock = join(dir, 'h.sock');
  try {
    writeFileSync(join(dir, 'a'), 'first file');
    writeFileSync(join(dir, 'b'), 'second file');
    const first = await FdHolder.connect(sock);
    assert.is(holderPids(sock).length, 1, 'started one holder');
    for (const [name, file] of [
      ['one', 'a'],
      ['two', 'b'],
    ]) {
      const fd = openSync(join(dir, file), 'r');
      first.put(name, `tag of ${name}`, fd);
      closeSync(fd);
    }
    assert.throws(() => first.put('bad name!', '', 0), /bad fd holder name/);
    first.close(); // the "daemon" ends: the holder keeps both

    const second = await FdHolder.connect(sock);
    assert.is(holderPids(sock).length, 1, 'the same holder answers');
    const held = second.take().sort((x, y) => x.name.localeCompare(y.name));
    assert.equal(
      held.map((h) => [h.name, h.tag]),
      [
        ['one', 'tag of one'],
        ['two', 'tag of two'],
      ],
    );
    assert.is(readFileSync(held[0].fd, 'utf8'), 'first file');
    for (const h of held) closeSync(h.fd);
    second.drop('one');
    second.drop('never-held');
    assert.equal(
      second.take().map((h) => (closeSync(h.fd), h.name)),
      ['two'],
    );
    // A raw malformed request gets an error answer, not a hang or a crash.
    const raw = native.unixConnectSeqpacket(sock);
    native.sendFds(raw, Buffer.from('Zz'), []);
    assert.match(native.recvFds(raw, 256, 1).data.toString(), /^eunknown request/);
    closeSync(raw);
    second.drop('two');
    const pid = holderPids(sock)[0];
    second.close();
    assert.ok(await until(() => holderPids(sock).length === 0), `holder ${pid} exited once empty and alone`);
    assert.not.ok(existsSync(sock), 'its socket is gone');
  } finally {
    for (const pid of holderPids(sock)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(fdsLeftSince(fds), []);
});

test('restarts its peer when that dies while fds are held', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-fdh-'));
  const sock = join(dir, 'h.sock');
  const marker = join(dir, 'restarted');
  try {
    const h = await FdHolder.connect(sock, ['/bin/sh', '-c', `echo yes > ${marker}`]);
    const fd = openSync('/dev/null', 'r');
    h.put('held', '', fd);
    closeSync(fd);
    h.close();
    assert.ok(await until(() => existsSync(marker)), 'the restart command ran');
    const again = await FdHolder.connect(sock);
    again.drop('held');
    again.close();
    assert.ok(await until(() => holderPids(sock).length === 0), 'then it exited, empty and alone');
  } finally {
    for (const pid of holderPids(sock)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
