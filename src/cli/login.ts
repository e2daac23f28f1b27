// strata login REGISTRY [-u USER] [--password-stdin] / strata logout REGISTRY | --all: the
// credentials in podman's auth.json ($REGISTRY_AUTH_FILE, else
// $XDG_RUNTIME_DIR/containers/auth.json), checked against the registry before they are saved.
import type { Argv, CommandModule } from 'yargs';
import { InvalidArgumentError } from '../errors.js';
import { verifyLogin } from '../registry/login.js';
import { removeCredentials, saveCredentials } from '../registry/credentials.js';
import type { GlobalArgs } from './context.js';

interface LoginArgs extends GlobalArgs {
  registry: string;
  username?: string;
  password?: string;
  'password-stdin': boolean;
  'tls-verify'?: boolean;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

export const loginCommand: CommandModule<GlobalArgs, LoginArgs> = {
  command: 'login <registry>',
  describe: "log in to a registry (saved in podman's auth.json)",
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('registry', { type: 'string', demandOption: true })
      .option('username', { alias: 'u', type: 'string' })
      .option('password', {
        alias: 'p',
        type: 'string',
        describe: 'visible to other users in ps: prefer --password-stdin',
      })
      .option('password-stdin', { type: 'boolean', default: false })
      .option('tls-verify', { type: 'boolean' }),
  handler: async (argv) => {
    const password = argv['password-stdin'] ? await readStdin() : argv.password;
    if (!argv.username || password === undefined) {
      throw new InvalidArgumentError('give --username and --password-stdin (or --password)', { op: 'login' });
    }
    const key = await verifyLogin(argv.registry, argv.username, password, argv['tls-verify']);
    const file = await saveCredentials(key, argv.username, password);
    process.stdout.write(`Login Succeeded (${file})\n`);
  },
};

export const logoutCommand: CommandModule<GlobalArgs, GlobalArgs & { registry?: string; all: boolean }> = {
  command: 'logout [registry]',
  describe: "remove a registry's credentials from podman's auth.json",
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('registry', { type: 'string' })
      .option('all', { alias: 'a', type: 'boolean', default: false }),
  handler: async (argv) => {
    if (!argv.all && !argv.registry)
      throw new InvalidArgumentError('give a registry or --all', { op: 'logout' });
    const removed = await removeCredentials(argv.all ? undefined : argv.registry);
    if (!removed) process.stderr.write(`strata: not logged in to ${argv.registry ?? 'any registry'}\n`);
    else
      process.stdout.write(`Removed login credentials for ${argv.all ? 'all registries' : argv.registry}\n`);
  },
};
