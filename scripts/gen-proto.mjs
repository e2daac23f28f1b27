#!/usr/bin/env node
// Generates TypeScript message types (protoc + @bufbuild/protoc-gen-es, target ts) for what the
// containerd shim speaks, from containerd 1.6's own .proto files as Debian ships them
// (golang-github-containerd-containerd-dev, golang-github-containerd-cgroups-dev under
// /usr/share/gocode) and from proto/ttrpc.proto (ttrpc's wire messages, which ship as Go structs).
// gogoproto options only steer Go code generation: they are stripped before protoc sees the files.
// Output: src/proto/generated/ (committed). `--check` exits 1 instead of writing when a file would
// change (or, when the .proto sources are not installed, says so and exits 0).
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const gocode = '/usr/share/gocode/src';
const outDir = join(root, 'src/proto/generated');
const check = process.argv.includes('--check');

/** Import path (as the .proto files spell it) → file on disk. */
const SOURCES = {
  'github.com/containerd/containerd/runtime/v2/task/shim.proto': null,
  'github.com/containerd/containerd/api/types/mount.proto': null,
  'github.com/containerd/containerd/api/types/task/task.proto': null,
  'github.com/containerd/containerd/api/events/task.proto': null,
  'github.com/containerd/containerd/api/services/ttrpc/events/v1/events.proto': null,
  'github.com/containerd/containerd/api/services/containers/v1/containers.proto': null,
  'github.com/containerd/containerd/api/services/images/v1/images.proto': null,
  'github.com/containerd/containerd/api/types/descriptor.proto': null,
  'github.com/containerd/containerd/pkg/runtimeoptions/v1/api.proto': null,
  'github.com/containerd/containerd/runtime/v2/runc/options/oci.proto': null,
  'github.com/containerd/cgroups/stats/v1/metrics.proto': null,
  'github.com/containerd/cgroups/v2/stats/metrics.proto': null,
};
const OWN = ['ttrpc.proto', 'strata-shim.proto'];

/** The .proto text without gogoproto: its import, file options and field options. */
export function stripGogo(text) {
  return text
    .replace(/^\s*import\s+(weak\s+)?"(github\.com\/gogo\/protobuf\/)?gogoproto\/gogo\.proto";\s*$/gm, '')
    .replace(/^\s*option\s+\(gogoproto\.[^)]+\)\s*=\s*[^;]+;\s*$/gm, '')
    .replace(/\[\s*\(gogoproto\.[^\]]*\]/g, '')
    .replace(
      /^\s*import\s+(weak\s+)?"github\.com\/containerd\/containerd\/protobuf\/plugin\/fieldpath\.proto";\s*$/gm,
      '',
    )
    .replace(/^\s*option\s+\(containerd\.plugin\.fieldpath[^;]*;\s*$/gm, '');
}

if (!existsSync(join(gocode, 'github.com/containerd/containerd/runtime/v2/task/shim.proto'))) {
  const msg = `the containerd .proto files are not installed under ${gocode} (apt-get install golang-github-containerd-containerd-dev golang-github-containerd-cgroups-dev)`;
  if (check) {
    process.stderr.write(`gen:proto --check skipped: ${msg}\n`);
    process.exit(0);
  }
  throw new Error(msg);
}

const work = mkdtempSync(join(tmpdir(), 'strata-gen-proto-'));
try {
  const inDir = join(work, 'in');
  const genDir = join(work, 'out');
  mkdirSync(genDir, { recursive: true });
  for (const imp of Object.keys(SOURCES)) {
    const dest = join(inDir, imp);
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, stripGogo(readFileSync(join(gocode, imp), 'utf8')));
  }
  for (const f of OWN) writeFileSync(join(inDir, f), readFileSync(join(root, 'proto', f), 'utf8'));
  const plugin = join(root, 'node_modules/.bin/protoc-gen-es');
  execFileSync(
    'protoc',
    [
      `--plugin=protoc-gen-es=${plugin}`,
      `--es_out=${genDir}`,
      '--es_opt=target=ts,import_extension=js',
      `-I${inDir}`,
      '-I/usr/include',
      ...Object.keys(SOURCES),
      ...OWN,
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const files = [];
  const walk = (d) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(relative(genDir, p));
    }
  };
  walk(genDir);
  let stale = 0;
  const wanted = new Set(files);
  for (const rel of files.sort()) {
    const out = join(outDir, rel);
    const text = readFileSync(join(genDir, rel), 'utf8');
    const old = existsSync(out) ? readFileSync(out, 'utf8') : '';
    if (old === text) continue;
    if (check) {
      process.stderr.write(`stale: ${relative(root, out)} (run npm run gen:proto)\n`);
      stale++;
    } else {
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, text);
    }
  }
  // Files no source makes any more.
  if (existsSync(outDir)) {
    const have = [];
    const walkOut = (d) => {
      for (const n of readdirSync(d)) {
        const p = join(d, n);
        if (statSync(p).isDirectory()) walkOut(p);
        else have.push(relative(outDir, p));
      }
    };
    walkOut(outDir);
    for (const rel of have.filter((r) => !wanted.has(r))) {
      if (check) {
        process.stderr.write(
          `stale: ${relative(root, join(outDir, rel))} (no source; run npm run gen:proto)\n`,
        );
        stale++;
      } else rmSync(join(outDir, rel));
    }
  }
  if (stale > 0) process.exit(1);
} finally {
  rmSync(work, { recursive: true, force: true });
}
