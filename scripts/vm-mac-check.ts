// The manual check of the vfkit backend on a Mac (docs/vm-mac-check.md): boots the guest image in
// IMAGE_DIR (scripts/build-vm-image.sh --arch arm64 on a Linux machine, copied over) with exactly
// VfkitBackend's argv, then checks what `strata run` on macOS relies on: vfkit's REST state, the
// agent's hello over the vsock bridge (its uname), commands in the guest (uname -m, crun), the REST
// stop and vfkit's exit. One line per step with its time; exit 0 when every step passed. test/vm/vfkit.test.ts runs it against its stand-in vfkit.
// Usage: npx tsx scripts/vm-mac-check.ts IMAGE_DIR   ($STRATA_VM_VFKIT: another vfkit)
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';

// Only modules that load on macOS: no native addon, no store.
import { connectAgent, guestCmdline, type VmConfig } from '../src/vm/backend.js';
import { VfkitBackend, restCall } from '../src/vm/vfkit.js';

export interface CheckStep {
  name: string;
  ok: boolean;
  detail: string;
  ms: number;
}

export interface MacCheckOptions {
  /** The vfkit to run (default $STRATA_VM_VFKIT, else vfkit on PATH). */
  binary?: string;
  /** What `uname -m` must print in the guest (default aarch64). */
  arch?: string;
  log?: (line: string) => void;
}

function imageHeader(kernel: string): Buffer {
  const head = Buffer.alloc(64);
  const fd = openSync(kernel, 'r');
  try {
    readSync(fd, head, 0, 64, 0);
  } finally {
    closeSync(fd);
  }
  return head;
}

export async function macCheck(imageDir: string, opts: MacCheckOptions = {}): Promise<CheckStep[]> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const steps: CheckStep[] = [];
  const t0 = Date.now();
  const step = (name: string, ok: boolean, detail: string): boolean => {
    const s = { name, ok, detail, ms: Date.now() - t0 };
    steps.push(s);
    log(`${ok ? 'ok  ' : 'FAIL'} ${String(s.ms).padStart(6)} ms  ${name}: ${detail}`);
    return ok;
  };
  // macOS's unix socket paths stop at 104 bytes and its $TMPDIR is long: /tmp.
  const stateDir = mkdtempSync(join(process.platform === 'darwin' ? '/tmp' : tmpdir(), 'strata-vfkit-'));
  const backend = new VfkitBackend({ binary: opts.binary });
  const cfg: VmConfig = {
    stateDir,
    kernel: join(imageDir, 'vmlinuz'),
    initrd: join(imageDir, 'initramfs.img'),
    cmdline: guestCmdline(backend.console),
    memoryMiB: 512,
    cpus: 2,
  };
  let child: ReturnType<typeof spawn> | undefined;
  let exited = false;
  try {
    const magic = imageHeader(cfg.kernel).subarray(0x38, 0x3c).toString('latin1');
    if (
      !step(
        'kernel',
        magic === 'ARMd',
        `${cfg.kernel}: ${magic === 'ARMd' ? 'an uncompressed arm64 Image' : 'not an arm64 Image'}`,
      )
    )
      return steps;
    const argv = backend.argv(cfg);
    log(`     ${argv.map((a) => (/[\s"]/.test(a) ? `'${a}'` : a)).join(' ')}`);
    const out = openSync(join(stateDir, 'vfkit.log'), 'w');
    child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', out, out] });
    closeSync(out);
    child.on('exit', () => (exited = true));
    const rest = join(stateDir, 'rest.sock');
    let state = '';
    for (const until = Date.now() + 20_000; Date.now() < until && !exited;) {
      try {
        state = String(((await restCall(rest, 'GET', '/vm/state')) as { state?: unknown }).state);
        if (state === 'VirtualMachineStateRunning') break;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!step('REST GET /vm/state', state === 'VirtualMachineStateRunning', state || 'no answer'))
      return steps;
    const { agent, hello } = await connectAgent(backend.agentSocket(cfg), {
      helloMs: 60_000,
      exited: () => exited,
    });
    step('agent hello over the vsock bridge', true, hello.info);
    const run = async (argv: string[]): Promise<{ code: number; out: string }> => {
      const chunks: Buffer[] = [];
      const stdout = new PassThrough();
      stdout.on('data', (d: Buffer) => chunks.push(d));
      const p = agent.exec(
        { argv, env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], rootPath: '/' },
        { stdout, stderr: stdout },
      );
      const { code } = await p.exited;
      return { code, out: Buffer.concat(chunks).toString().trim() };
    };
    const arch = opts.arch ?? 'aarch64';
    const uname = await run(['uname', '-m']);
    step('uname -m in the guest', uname.code === 0 && uname.out === arch, uname.out);
    const crun = await run(['crun', '--version']);
    step(
      'crun in the guest',
      crun.code === 0 && /^crun version/.test(crun.out),
      crun.out.split('\n')[0] ?? '',
    );
    const exit = await run(['sh', '-c', 'exit 7']);
    step('exit code from the guest', exit.code === 7, String(exit.code));
    agent.close();
    await restCall(rest, 'POST', '/vm/state', { state: 'Stop' });
    for (const until = Date.now() + 20_000; Date.now() < until && !exited;)
      await new Promise((r) => setTimeout(r, 100));
    step('REST POST /vm/state Stop', exited, exited ? 'vfkit exited' : 'vfkit still runs after 20 s');
  } catch (err) {
    step('error', false, (err as Error).message);
  } finally {
    if (child && !exited) child.kill('SIGKILL');
    const consoleLog = join(stateDir, 'console.log');
    if (steps.some((s) => !s.ok) && existsSync(consoleLog))
      log(`guest console:\n${readFileSync(consoleLog, 'utf8')}`);
    rmSync(stateDir, { recursive: true, force: true });
  }
  return steps;
}

if (process.argv[1]?.endsWith('vm-mac-check.ts')) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: npx tsx scripts/vm-mac-check.ts IMAGE_DIR');
    process.exit(2);
  }
  const steps = await macCheck(dir);
  process.exit(steps.length > 0 && steps.every((s) => s.ok) ? 0 : 1);
}
