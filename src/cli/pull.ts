// strata image pull REF [--platform os/arch[/variant]] [--tls-verify] [--all-tags] [--quiet] [--json], and
// the progress display: on a TTY one bar per layer (downloaded bytes of its size, rate) and a
// total; nothing otherwise; --json prints the result (with per-layer sizes and timings).
import type CliProgress from 'cli-progress';
import { createRequire } from 'node:module';
import type { Argv, CommandModule } from 'yargs';
import type { PullEvent } from '../registry/source.js';
import { storeFor, type GlobalArgs } from './context.js';
import { formatBytes, printJson, shortDigest } from './output.js';

export interface PullArgs extends GlobalArgs {
  ref: string;
  platform?: string;
  'tls-verify'?: boolean;
  quiet: boolean;
  json: boolean;
  'min-free'?: string;
  'all-tags': boolean;
}

interface PullDisplay {
  event(e: PullEvent): void;
  /** The first `layers` layers come from an image in the store: nothing to download. */
  reused(layers: number): void;
  stop(): void;
}

/** Bars on stderr when it is a TTY; else a line per fallback/retry unless quiet. */
export function pullDisplay(quiet: boolean): PullDisplay {
  if (quiet) return { event() {}, reused() {}, stop() {} };
  if (!process.stderr.isTTY) {
    return {
      event(e) {
        if (e.type === 'source-failed')
          process.stderr.write(`strata: ${e.from} failed, trying the next source: ${e.error}\n`);
      },
      reused() {},
      stop() {},
    };
  }
  const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof CliProgress;
  const multi = new cliProgress.MultiBar(
    {
      stream: process.stderr,
      format: '{label} {bar} {value_h}/{total_h} {rate}',
      hideCursor: true,
      clearOnComplete: false,
      formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? formatBytes(v) : String(v)),
    },
    cliProgress.Presets.shades_classic,
  );
  const bars: CliProgress.SingleBar[] = [];
  let total: CliProgress.SingleBar | undefined;
  const got: number[] = [];
  const t0 = Date.now();
  const rate = (n: number) => `${formatBytes((n * 1000) / Math.max(1, Date.now() - t0))}/s`;
  return {
    event(e) {
      if (e.type === 'resolved') {
        const sum = e.layers.reduce((n, l) => n + l.size, 0);
        e.layers.forEach((l, i) => {
          got[i] = 0;
          bars[i] = multi.create(l.size, 0, {
            label: shortDigest(l.digest),
            value_h: '0 B',
            total_h: formatBytes(l.size),
            rate: '',
          });
        });
        total = multi.create(sum, 0, {
          label: 'total       ',
          value_h: '0 B',
          total_h: formatBytes(sum),
          rate: '',
        });
      } else if (e.type === 'layer-bytes' && bars[e.index]) {
        got[e.index] = e.bytes;
        bars[e.index].update(e.bytes, { value_h: formatBytes(e.bytes), rate: rate(e.bytes) });
        const sum = got.reduce((a, b) => a + b, 0);
        total?.update(sum, { value_h: formatBytes(sum), rate: rate(sum) });
      } else if (e.type === 'source-failed')
        multi.log(`${e.from} failed, trying the next source: ${e.error}\n`);
      else if (e.type === 'resume')
        multi.log(
          `layer ${e.index + 1}: going on from the ${formatBytes(e.offset)} an interrupted pull kept\n`,
        );
      else if (e.type === 'retry')
        multi.log(`layer ${e.index + 1}: resuming at ${e.offset} bytes (${e.error})\n`);
    },
    reused(layers) {
      for (let i = 0; i < layers && i < bars.length; i++) {
        bars[i].update(bars[i].getTotal(), { value_h: 'in the store', total_h: '', rate: '' });
      }
    },
    stop() {
      multi.stop();
    },
  };
}

export const pullCmd: CommandModule<GlobalArgs, PullArgs> = {
  command: 'pull <ref>',
  describe: 'pull an image from a registry into the store (credentials and registries.conf as podman)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('ref', { type: 'string', demandOption: true })
      .option('platform', {
        type: 'string',
        describe: 'os/arch[/variant] of a multi-platform image (default: this host)',
      })
      .option('tls-verify', {
        type: 'boolean',
        describe: 'verify TLS (default: registries.conf; false also allows http)',
      })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no progress' })
      .option('min-free', {
        type: 'string',
        describe: "free space to leave on the store's filesystem (default 1G)",
      })
      .option('all-tags', {
        alias: 'a',
        type: 'boolean',
        default: false,
        describe: 'every tagged image of the repository REF names',
      })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
  handler: async (argv) => {
    // Loaded here, not with `strata image`: undici and the registry client cost ~20 ms to load.
    const { pullAllTags, pullImage } = await import('../registry/pull.js');
    const { parsePlatform } = await import('../registry/platform.js');
    const store = await storeFor(argv);
    const common = {
      platform: argv.platform ? parsePlatform(argv.platform) : undefined,
      tlsVerify: argv['tls-verify'],
      minFree: argv['min-free'],
    };
    if (argv['all-tags']) {
      const quiet = argv.quiet || argv.json;
      const results = await pullAllTags(store, argv.ref, {
        ...common,
        onTag: (tag, i, n) => !quiet && process.stderr.write(`strata: pulling tag ${tag} (${i + 1}/${n})\n`),
      });
      if (argv.json) return printJson(results);
      for (const r of results)
        process.stdout.write(`${shortDigest(r.record.manifestDigest)} ${r.names.join(' ')}\n`);
      return;
    }
    const display = pullDisplay(argv.quiet || argv.json);
    const result = await pullImage(store, argv.ref, {
      ...common,
      onEvent: (e) => display.event(e),
      onProgress: (p) => p.phase === 'reuse' && display.reused(p.layers),
    }).finally(() => display.stop());
    if (argv.json) return printJson(result);
    const what = result.existing ? 'already present' : `${result.objectsWritten} new objects`;
    process.stdout.write(
      `${shortDigest(result.record.manifestDigest)} ${result.names.join(' ')} (${what})\n`,
    );
  },
};
