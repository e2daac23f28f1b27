// The Node front end of `strata run` (src/run/client.ts, run by the Node CLI from dist/) against a
// scripted daemon: what it says when the daemon goes away before its final word.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { NATIVE_CONTRACT } from '../../src/contract/generated/native-contract.js';
import { decodeRunMessages, encodeExec, encodeExit, type RunMessage } from '../../src/run/protocol.js';

const repo = new URL('../../', import.meta.url).pathname;
const scratch = mkdtempSync(join(tmpdir(), 'strata-client-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs `strata run img` through the Node CLI; the daemon execs `script` with `pidFile`, reads
 * "started", then drops the connection. */
async function lostAfterExec(script: string, pidFile: string, resume?: { id: string; code: number }) {
  const socketPath = join(mkdtempSync(join(scratch, 'd-')), 's.sock');
  const seen: string[] = [];
  const resumed: string[][] = [];
  const server = createServer((socket: Socket) => {
    let buf: Buffer = Buffer.alloc(0);
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => {
      const { messages, rest } = decodeRunMessages(Buffer.concat([buf, d]));
      buf = rest;
      for (const m of messages as RunMessage[]) {
        seen.push(m.verb);
        if (m.verb === 'run') {
          socket.write(
            encodeExec({
              argv: ['/bin/sh', '-c', script],
              cwd: '/',
              stdin: 'null',
              pgrp: 'new',
              pidFile,
              ...(resume ? { id: resume.id, runDir: '/run/x' } : {}),
            }),
          );
        } else if (m.verb === 'started') socket.destroy();
        else if (m.verb === 'resume') resumed.push(m.fields);
        else if (m.verb === 'exited' && resume) socket.end(encodeExit(resume.code, 'from the new daemon'));
      }
    });
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  try {
    const child = spawn(
      process.execPath,
      [join(repo, 'dist/src/cli/main.js'), 'run', '--pull=never', 'img'],
      {
        env: { ...process.env, STRATA_SOCKET: socketPath },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20000);
    const code = await new Promise<number | null>((r) => child.on('close', r));
    clearTimeout(timer);
    return { code, stderr, seen, resumed };
  } finally {
    await new Promise((r) => server.close(r));
  }
}

test('a daemon lost before the container started (no pid file, the runtime failed): 125, "did not start"', async () => {
  const r = await lostAfterExec('sleep 0.2; exit 1', join(scratch, 'never-written.pid'));
  assert.equal(r.seen, ['run', 'started']);
  assert.is(r.code, NATIVE_CONTRACT.exit.runFailed, r.stderr);
  assert.is(r.stderr, `strata: ${NATIVE_CONTRACT.run.lostBeforeStartMessage}\n`);
});

test("a daemon lost after the container started (its pid file exists): the runtime's status", async () => {
  const pidFile = join(scratch, 'written.pid');
  const r = await lostAfterExec(`echo $$ > ${pidFile}; sleep 0.2; exit 3`, pidFile);
  assert.is(r.code, 3, r.stderr);
  assert.is(r.stderr, `strata: ${NATIVE_CONTRACT.run.lostMessage}\n`);
});

test('a daemon lost during the run: the next one gets "resume" and the end, and names the exit code', async () => {
  const id = 'd'.repeat(64);
  const r = await lostAfterExec('sleep 0.5; exit 3', join(scratch, 'never.pid'), { id, code: 42 });
  assert.is(r.code, 42, r.stderr);
  assert.is(r.stderr, 'from the new daemon\n');
  assert.equal(r.seen, ['run', 'started', 'resume', 'exited']);
  assert.equal(r.resumed[0].slice(0, 3), [NATIVE_CONTRACT.run.version, id, '/run/x']);
  assert.match(r.resumed[0][3], /^[0-9]+$/);
});

test.run();
