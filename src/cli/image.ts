// strata image import|ls|inspect|tag|rm
import type { Argv, CommandModule } from 'yargs';
import { importImage, type ImportProgress } from '../store/import.js';
import { removeImage, tagImage } from '../store/images.js';
import { listImages, resolveImage, type ImageInfo } from '../store/records.js';
import { storeFor, type GlobalArgs } from './context.js';
import { formatBytes, printJson, printTable, progress, shortDigest } from './output.js';
import { pullCmd } from './pull.js';

interface JsonArgs extends GlobalArgs {
  json: boolean;
}

const json = { type: 'boolean', default: false, describe: 'print JSON' } as const;

interface ForeignArgs {
  'containerd-root'?: string;
  address?: string;
  namespace?: string;
  'storage-root'?: string;
  'storage-conf'?: string;
}

const importCmd: CommandModule<
  GlobalArgs,
  JsonArgs & ForeignArgs & { source: string; name?: string; 'min-free'?: string }
> = {
  command: 'import <source>',
  describe:
    'import an image: oci:DIR[:tag], oci-archive:TAR, docker-archive:TAR, a path, containerd:NAME or containers-storage:NAME',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('source', { type: 'string', demandOption: true })
      .option('name', { type: 'string', describe: 'name to give the image (default: its own names)' })
      .option('min-free', {
        type: 'string',
        describe:
          "free space to leave on the store's filesystem: 2G, 512M or 5% (default: $STRATA_MIN_FREE, else 1G)",
      })
      .option('containerd-root', {
        type: 'string',
        describe: 'containerd:NAME: containerd root (default /var/lib/containerd)',
      })
      .option('address', {
        type: 'string',
        describe:
          'containerd:NAME: containerd socket (default $CONTAINERD_ADDRESS, else /run/containerd/containerd.sock)',
      })
      .option('namespace', {
        type: 'string',
        describe: 'containerd:NAME: containerd namespace (default $CONTAINERD_NAMESPACE, else default)',
      })
      .option('storage-root', {
        type: 'string',
        describe:
          "containers-storage:NAME: graph root (default storage.conf's graphroot, else /var/lib/containers/storage)",
      })
      .option('storage-conf', {
        type: 'string',
        describe:
          'containers-storage:NAME: storage.conf (default $CONTAINERS_STORAGE_CONF, else /etc/containers/storage.conf)',
      })
      .option('json', json),
  handler: async (argv) => {
    const store = await storeFor(argv);
    const { openSource } = await import('../store/source/open-source.js');
    const sourceOptions = {
      containerd: { root: argv['containerd-root'], address: argv.address, namespace: argv.namespace },
      containersStorage: { root: argv['storage-root'], storageConf: argv['storage-conf'] },
    };
    const bar = progress(!argv.json);
    const onProgress = (p: ImportProgress) => {
      if (p.phase === 'waiting') bar.note(`${p.reason}...`);
      else if (p.phase === 'layer') {
        bar.update(p.index, p.count, `layer ${p.index + 1}/${p.count} ${formatBytes(p.bytes)}`);
      } else if (p.phase === 'commit') bar.update(1, 1, 'committing');
    };
    const result = await importImage(store, argv.source, {
      name: argv.name,
      openSource: (spec) => openSource(spec, sourceOptions),
      onProgress,
      minFree: argv['min-free'],
    }).finally(() => bar.stop());
    if (argv.json) return printJson(result);
    const what = result.existing ? 'already present' : `${result.objectsWritten} new objects`;
    process.stdout.write(
      `${shortDigest(result.record.manifestDigest)} ${result.names.join(' ')} (${what})\n`,
    );
  },
};

const lsCmd: CommandModule<GlobalArgs, JsonArgs> = {
  command: 'ls',
  describe: 'list images',
  builder: (y: Argv<GlobalArgs>) => y.option('json', json),
  handler: async (argv) => {
    const store = await storeFor(argv);
    const images = await listImages(store.root);
    if (argv.json) return printJson(images);
    const rows = images.flatMap((img) =>
      (img.names.length ? img.names : ['<none>']).map((name) => [
        name,
        shortDigest(img.manifestDigest),
        String(img.fileCount),
        formatBytes(img.contentBytes),
        img.created,
      ]),
    );
    printTable(['NAME', 'DIGEST', 'FILES', 'SIZE', 'IMPORTED'], rows);
  },
};

function describeImage(img: ImageInfo): string {
  const lines = [
    `Manifest:  ${img.manifestDigest}`,
    `Config:    ${img.configDigest}`,
    `Index:     ${img.indexDigest} (${formatBytes(img.indexBytes)})`,
    `Names:     ${img.names.join(', ') || '<none>'}`,
    `Platform:  ${img.os ?? '?'}/${img.architecture ?? '?'}`,
    `Files:     ${img.fileCount} (${img.objectCount} objects, ${formatBytes(img.contentBytes)})`,
    `Imported:  ${img.created}${img.source ? ` from ${img.source}` : ''}`,
    `Layers:`,
    ...img.layers.map((l) => `  ${l.digest} ${formatBytes(l.size)} ${l.mediaType}`),
  ];
  return lines.join('\n') + '\n';
}

const inspectCmd: CommandModule<GlobalArgs, JsonArgs & { ref: string }> = {
  command: 'inspect <ref>',
  describe: 'show an image (name, name:tag, or full or short digest)',
  builder: (y: Argv<GlobalArgs>) =>
    y.positional('ref', { type: 'string', demandOption: true }).option('json', json),
  handler: async (argv) => {
    const store = await storeFor(argv);
    const image = await resolveImage(store.root, argv.ref);
    if (argv.json) printJson(image);
    else process.stdout.write(describeImage(image));
  },
};

const tagCmd: CommandModule<GlobalArgs, GlobalArgs & { src: string; name: string }> = {
  command: 'tag <src> <name>',
  describe: 'give an image another name',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('src', { type: 'string', demandOption: true })
      .positional('name', { type: 'string', demandOption: true }),
  handler: async (argv) => {
    const store = await storeFor(argv);
    await tagImage(store.root, argv.src, argv.name);
  },
};

const rmCmd: CommandModule<GlobalArgs, JsonArgs & { refs: string[] }> = {
  command: 'rm <refs..>',
  describe: 'remove names; an image goes with its last name (its content with the next gc)',
  builder: (y: Argv<GlobalArgs>) =>
    y.positional('refs', { type: 'string', array: true, demandOption: true }).option('json', json),
  handler: async (argv) => {
    const store = await storeFor(argv);
    const results = [];
    for (const ref of argv.refs) results.push(await removeImage(store.root, ref));
    if (argv.json) return printJson(results);
    for (const r of results) {
      for (const name of r.untagged) process.stdout.write(`untagged ${name}\n`);
      if (r.deleted) process.stdout.write(`deleted ${r.deleted}\n`);
    }
  },
};

export const imageCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'image <command>',
  describe: 'manage images in the store',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .command(importCmd)
      .command(pullCmd)
      .command(lsCmd)
      .command(inspectCmd)
      .command(tagCmd)
      .command(rmCmd)
      .demandCommand(1),
  handler: () => {},
};
