// `strata run` argument parsing, docker-style and without yargs: options come before IMAGE,
// everything after IMAGE is the command, short flags cluster (-it, -dit, -eK=V). Pure, so the CLI
// start path costs no parser setup and the tests need no process.
import { InvalidArgumentError } from '../errors.js';
import { parseAnnotation, parsePidsLimit, parseSecurityOpts, type RunOptions } from '../spec/options.js';
import type { RuntimeName } from './record.js';

/**
 * `strata run`'s command line. It is a RunOptions (src/spec/options.ts), the one shape of a
 * container's options, normalised here once and handed on as it is; the other fields are what
 * the run command itself does.
 */
export interface RunArgs extends Omit<RunOptions, 'mounts'> {
  image: string;
  rm: boolean;
  detach: boolean;
  interactive: boolean;
  tty: boolean;
  /** Run in a VM (qemu on Linux; src/vm/). */
  vm: boolean;
  name?: string;
  runtime?: RuntimeName;
  env: string[];
  readOnly: boolean;
  /** -v and --mount as given: parsed, and their host paths checked, as the container is written. */
  volumes: string[];
  mountSpecs: string[];
  capAdd: string[];
  capDrop: string[];
  network: 'none' | 'host';
  /** Global options, accepted here too so `strata run --root X` works. */
  root?: string;
  socket?: string;
  runDir?: string;
  /** podman's --pull: missing (default), always, never. */
  pull?: PullPolicy;
  help: boolean;
}

export type PullPolicy = 'missing' | 'always' | 'never';

type Flag = 'rm' | 'detach' | 'interactive' | 'tty' | 'readOnly' | 'help' | 'vm';
type Value =
  | 'name'
  | 'runtime'
  | 'env'
  | 'workdir'
  | 'user'
  | 'hostname'
  | 'volume'
  | 'mount'
  | 'capAdd'
  | 'capDrop'
  | 'network'
  | 'entrypoint'
  | 'securityOpt'
  | 'pidsLimit'
  | 'annotation'
  | 'root'
  | 'socket'
  | 'runDir'
  | 'pull';

const FLAGS: Record<string, Flag> = {
  rm: 'rm',
  detach: 'detach',
  d: 'detach',
  interactive: 'interactive',
  i: 'interactive',
  tty: 'tty',
  t: 'tty',
  'read-only': 'readOnly',
  vm: 'vm',
  help: 'help',
  h: 'help',
};

const VALUES: Record<string, Value> = {
  name: 'name',
  runtime: 'runtime',
  env: 'env',
  e: 'env',
  workdir: 'workdir',
  w: 'workdir',
  user: 'user',
  u: 'user',
  hostname: 'hostname',
  volume: 'volume',
  v: 'volume',
  mount: 'mount',
  'cap-add': 'capAdd',
  'cap-drop': 'capDrop',
  network: 'network',
  net: 'network',
  entrypoint: 'entrypoint',
  'security-opt': 'securityOpt',
  'pids-limit': 'pidsLimit',
  annotation: 'annotation',
  root: 'root',
  socket: 'socket',
  'run-dir': 'runDir',
  pull: 'pull',
};

export const RUN_USAGE = `Usage: strata run [OPTIONS] IMAGE [COMMAND [ARG...]]

Run a command in a new container whose root is IMAGE from the strata store.

Options:
      --rm                 remove the container when it exits
  -d, --detach             run in the background and print the container id
  -i, --interactive        keep stdin open (pass it to the container)
  -t, --tty                allocate a pseudo-terminal
      --vm                 run it in a VM (qemu; one VM serves every --vm container, stopped
                           when idle: strata vm ls|stop|rm)
      --name NAME          container name (default: generated)
      --runtime crun|runc  OCI runtime (default: crun when it works here, else runc; $STRATA_RUNTIME)
  -e, --env K=V|K          set an environment variable (K alone: copy it from here)
  -w, --workdir DIR        working directory inside the container
  -u, --user USER[:GROUP]  user (name or id) to run as
      --hostname NAME      container host name
      --read-only          read-only root filesystem
  -v, --volume SRC:DST[:OPTS] | DST   bind mount, or an anonymous tmpfs at DST
      --mount type=bind|tmpfs,src=…,dst=…[,ro]
      --cap-add CAP, --cap-drop CAP   capabilities (ALL allowed)
      --network none|host  network namespace (default: none, loopback only)
      --entrypoint CMD     replace the image's entrypoint ("" clears it)
      --security-opt seccomp=unconfined|FILE | no-new-privileges
                           seccomp profile (default: podman's, /usr/share/containers/seccomp.json)
      --pids-limit N       most tasks in the container (default 2048 where cgroups allow; -1: none)
      --annotation K=V     add an annotation to the container's config
      --pull missing|always|never   pull the image from its registry (default: when missing)
      --root DIR           store root ($STRATA_ROOT, /var/lib/strata)
      --socket PATH        daemon socket ($STRATA_SOCKET, /run/strata/strata.sock)
      --run-dir DIR        container records ($STRATA_RUN_DIR, /run/strata)
`;

function bad(msg: string): never {
  throw new InvalidArgumentError(`${msg} (see strata run --help)`, { op: 'run' });
}

function setValue(out: RunArgs, key: Value, value: string, opt: string): void {
  switch (key) {
    case 'env':
      out.env.push(value);
      return;
    case 'volume':
      out.volumes.push(value);
      return;
    case 'mount':
      out.mountSpecs.push(value);
      return;
    case 'capAdd':
      out.capAdd.push(value);
      return;
    case 'capDrop':
      out.capDrop.push(value);
      return;
    case 'securityOpt': {
      const sec = parseSecurityOpts([value]);
      if (sec.seccompProfile !== undefined) out.seccompProfile = sec.seccompProfile;
      if (sec.noNewPrivileges !== undefined) out.noNewPrivileges = sec.noNewPrivileges;
      return;
    }
    case 'pidsLimit':
      out.pidsLimit = parsePidsLimit(value);
      return;
    case 'annotation': {
      const [k, v] = parseAnnotation(value);
      (out.annotations ??= {})[k] = v;
      return;
    }
    case 'runtime':
      if (value !== 'crun' && value !== 'runc') bad(`${opt} "${value}": strata runs crun or runc`);
      out.runtime = value;
      return;
    case 'network':
      if (value !== 'none' && value !== 'host') bad(`${opt} "${value}": use none or host`);
      out.network = value;
      return;
    case 'pull':
      if (value !== 'missing' && value !== 'always' && value !== 'never')
        bad(`${opt} "${value}": use missing, always or never`);
      out.pull = value;
      return;
    case 'entrypoint':
      // "" clears the image's entrypoint.
      out.entrypoint = value === '' ? [] : [value];
      return;
    default:
      out[key] = value;
  }
}

export function parseRunArgs(argv: string[]): RunArgs {
  const out: RunArgs = {
    image: '',
    rm: false,
    detach: false,
    interactive: false,
    tty: false,
    vm: false,
    env: [],
    readOnly: false,
    volumes: [],
    mountSpecs: [],
    capAdd: [],
    capDrop: [],
    network: 'none',
    noNewPrivileges: false,
    annotations: {},
    help: false,
  };
  let i = 0;
  const next = (opt: string): string => {
    if (i + 1 >= argv.length) bad(`${opt} needs a value`);
    return argv[++i];
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      i++;
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const flag = FLAGS[name];
      if (flag && name.length > 1) {
        if (eq >= 0) {
          const v = a.slice(eq + 1);
          if (v !== 'true' && v !== 'false') bad(`--${name} takes no value`);
          out[flag] = v === 'true';
        } else out[flag] = true;
        continue;
      }
      const key = name.length > 1 ? VALUES[name] : undefined;
      if (!key) bad(`unknown option --${name}`);
      setValue(out, key, eq < 0 ? next(`--${name}`) : a.slice(eq + 1), `--${name}`);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const c = a[j];
        if (FLAGS[c]) {
          out[FLAGS[c]] = true;
          continue;
        }
        const key = VALUES[c];
        if (!key || c.length !== 1) bad(`unknown option -${c}`);
        setValue(out, key, j + 1 < a.length ? a.slice(j + 1) : next(`-${c}`), `-${c}`);
        break;
      }
      continue;
    }
    break;
  }
  if (out.help) return out;
  if (i >= argv.length) bad('no image given');
  out.image = argv[i];
  const command = argv.slice(i + 1);
  // `strata run IMG -- CMD` as `strata bundle` takes it: the separator is not part of the command.
  if (command[0] === '--') command.shift();
  // None: the image's Cmd.
  if (command.length > 0) out.command = command;
  if (out.detach && out.tty)
    bad('-d with -t is not supported: a detached container has no terminal to attach');
  if (out.detach && out.interactive) bad('-d with -i is not supported: nothing would read stdin');
  return out;
}

/**
 * `argv` with its --pull options replaced by one `--pull=never`: what the Node front end sends
 * the daemon once it has pulled (the daemon hands a run that still needs a pull back to it).
 */
export function withPullDone(argv: string[]): string[] {
  const out: string[] = ['--pull=never'];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--' || !a.startsWith('-') || a === '-') break;
    if (a === '--pull') {
      i++;
      continue;
    }
    if (a.startsWith('--pull=')) continue;
    out.push(a);
    if (a.startsWith('--')) {
      const name = a.slice(2);
      if (!a.includes('=') && VALUES[name] && name.length > 1 && i + 1 < argv.length) out.push(argv[++i]);
    } else {
      // A short cluster takes the next word when its last letter is a value option with nothing after it.
      const last = a[a.length - 1];
      const valueAt = [...a.slice(1)].findIndex((c) => VALUES[c] !== undefined);
      if (valueAt === a.length - 2 && VALUES[last] && i + 1 < argv.length) out.push(argv[++i]);
    }
  }
  return [...out, ...argv.slice(i)];
}
