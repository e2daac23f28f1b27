// A worker thread of the object writer (writer.ts): hashes one file's content, checks whether the
// object exists, and writes the temp file, all with synchronous calls. On the main thread the same
// work cost four thread-pool round trips per file (stat, open, write, close) plus the sha256, and
// the main thread is where the tar parser and the layer's own digests already run; here a few
// workers do it beside it. At commit the workers also link the temp files into objects/.
//
// Messages (writer.ts ObjectPool is the only sender):
//   {id, op: 'put', data, size, temp, root, fsync}   -> {id, digest, state: 'ok' | 'absent' | 'corrupt'}
//        'ok': the object exists with this size, nothing written; otherwise `temp` now holds
//        the content (0444, fsynced when asked) and the caller decides how to move it into place.
//   {id, op: 'move', items: [{temp, dest, replace}]} -> {id}
//   failures                                         -> {id, error: {message, code}}
import { createHash } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { parentPort } from 'node:worker_threads';
import { CREATE_EXCLUSIVE } from './atomic.js';
import { objectPath } from './layout.js';

export type WorkerRequest =
  | { id: number; op: 'put'; data: Uint8Array; size: number; temp: string; root: string; fsync: boolean }
  | { id: number; op: 'move'; items: { temp: string; dest: string; replace: boolean }[] };

export type WorkerReply =
  | { id: number; digest?: string; state?: 'ok' | 'absent' | 'corrupt' }
  | { id: number; error: { message: string; code?: string } };

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function put(req: Extract<WorkerRequest, { op: 'put' }>): WorkerReply {
  const digest = createHash('sha256').update(req.data).digest('hex');
  const dest = objectPath(req.root, digest);
  let state: 'ok' | 'absent' | 'corrupt' = 'absent';
  try {
    state = statSync(dest).size === req.size ? 'ok' : 'corrupt';
  } catch (err) {
    if (errno(err) !== 'ENOENT') throw err;
  }
  if (state === 'ok') return { id: req.id, digest, state };
  const fd = openSync(req.temp, CREATE_EXCLUSIVE, 0o444);
  try {
    for (let off = 0; off < req.data.length;) off += writeSync(fd, req.data, off);
    if (req.fsync) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(req.temp, { force: true });
    throw err;
  }
  closeSync(fd);
  return { id: req.id, digest, state };
}

/** As atomic.ts linkNoReplace (EEXIST = the same content is there), or rename when replacing. */
function move(items: { temp: string; dest: string; replace: boolean }[]): void {
  for (const { temp, dest, replace } of items) {
    if (replace) {
      mkdirSync(dirname(dest), { recursive: true });
      renameSync(temp, dest);
      continue;
    }
    try {
      linkSync(temp, dest);
    } catch (err) {
      if (errno(err) === 'ENOENT') {
        mkdirSync(dirname(dest), { recursive: true });
        try {
          linkSync(temp, dest);
        } catch (again) {
          if (errno(again) !== 'EEXIST') throw again;
        }
      } else if (errno(err) !== 'EEXIST') throw err;
    }
    rmSync(temp, { force: true });
  }
}

parentPort?.on('message', (req: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    if (req.op === 'put') reply = put(req);
    else {
      move(req.items);
      reply = { id: req.id };
    }
  } catch (err) {
    reply = { id: req.id, error: { message: (err as Error).message, code: errno(err) } };
  }
  parentPort!.postMessage(reply);
});
