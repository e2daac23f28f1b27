// The workload runner for bench-fs: a small C program, compiled once per run with gcc, so the
// measured I/O is done by a process that is neither Node nor the FUSE server.
//   walk DIR            nftw(FTW_PHYS): every entry lstat'ed
//   readall DIR         walk + read every regular file (1 MiB reads)
//   seq FILE            read the file start to end (1 MiB reads)
//   rand FILE N SEED    N preads of 4 KiB at random 4 KiB-aligned offsets
//   randpair A B N SEED N such preads of each of two files, in turns, each read timed (bench-fs's
//                       random 4 KiB goal: strata and overlayfs at the same moments)
//   seqpair A B HALF    1 MiB reads of A's first half (HALF 0; the second: 1) and B's other half, in
//                       turns, each read timed (the sequential goal: strata and its object file)
// Each prints {"entries":N,"bytes":N,"ns":N,"sysNs":N}: sysNs is the runner's own system time
// (getrusage), which for a kernel filesystem is the CPU the filesystem itself spends.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../test/fixtures/run.js';

const SOURCE = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long long entries, bytes;
static int reading;
static char *buf;
#define CHUNK (1 << 20)

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int read_file(const char *path) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) { perror(path); return -1; }
  ssize_t n;
  while ((n = read(fd, buf, CHUNK)) > 0) bytes += n;
  if (n < 0) perror(path);
  close(fd);
  return n < 0 ? -1 : 0;
}

static int visit(const char *path, const struct stat *st, int flag, struct FTW *f) {
  (void)f;
  if (flag == FTW_NS || flag == FTW_DNR) { fprintf(stderr, "%s: cannot stat/read\n", path); return 1; }
  entries++;
  if (reading && S_ISREG(st->st_mode) && read_file(path) < 0) return 1;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: fsbench walk|readall|seq|rand PATH [N SEED]\n"); return 2; }
  buf = aligned_alloc(4096, CHUNK);
  long long start = now_ns();
  if (!strcmp(argv[1], "walk") || !strcmp(argv[1], "readall")) {
    reading = !strcmp(argv[1], "readall");
    if (nftw(argv[2], visit, 64, FTW_PHYS) != 0) return 1;
  } else if (!strcmp(argv[1], "seq")) {
    entries = 1;
    if (read_file(argv[2]) < 0) return 1;
  } else if (!strcmp(argv[1], "rand") && argc == 5) {
    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) { perror(argv[2]); return 1; }
    long long count = atoll(argv[3]);
    uint64_t x = strtoull(argv[4], 0, 10) | 1, pages = st.st_size / 4096;
    for (long long i = 0; i < count; i++) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      ssize_t n = pread(fd, buf, 4096, (off_t)((x % pages) * 4096));
      if (n != 4096) { perror("pread"); return 1; }
      bytes += n;
    }
    entries = count;
    close(fd);
  } else if (!strcmp(argv[1], "randpair") && argc == 6) {
    // Two files of one size, read in turns: the k-th read of each at the same moment, so that
    // both meet the same load. Offsets are in 64-page blocks, even blocks for the first file and
    // odd ones for the second (no page is read twice when both name one inode), and which file
    // reads first alternates. Each read is timed on its own; ns is the first file's sum, ns2 the
    // second's.
    int fd[2] = {open(argv[2], O_RDONLY | O_CLOEXEC), open(argv[3], O_RDONLY | O_CLOEXEC)};
    struct stat st[2];
    if (fd[0] < 0 || fd[1] < 0 || fstat(fd[0], &st[0]) < 0 || fstat(fd[1], &st[1]) < 0 ||
        st[0].st_size != st[1].st_size || st[0].st_size < 2 * 64 * 4096) {
      fprintf(stderr, "randpair: two readable files of one size (>= 512 KiB)\n");
      return 1;
    }
    long long count = atoll(argv[4]), sum[2] = {0, 0};
    uint64_t x = strtoull(argv[5], 0, 10) | 1, blocks = st[0].st_size / 4096 / 64 / 2;
    for (long long i = 0; i < count; i++) {
      for (int k = 0; k < 2; k++) {
        int f = (int)(i & 1) ^ k;
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        uint64_t page = ((x >> 6) % blocks * 2 + (uint64_t)f) * 64 + (x & 63);
        long long t = now_ns();
        ssize_t n = pread(fd[f], buf, 4096, (off_t)(page * 4096));
        sum[f] += now_ns() - t;
        if (n != 4096) { perror("pread"); return 1; }
        bytes += n;
      }
    }
    entries = count;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long long sys = ru.ru_stime.tv_sec * 1000000000LL + ru.ru_stime.tv_usec * 1000LL;
    printf("{\"entries\":%lld,\"bytes\":%lld,\"ns\":%lld,\"ns2\":%lld,\"sysNs\":%lld}\n", entries, bytes,
           sum[0], sum[1], sys);
    return 0;
  } else if (!strcmp(argv[1], "seqpair") && argc == 5) {
    // Two files of one size, read sequentially in 1 MiB reads in turns (which goes first
    // alternates), each read timed: the first file's first half (or second half: HALF 1) and the
    // other half of the second file, so that no page is read twice when both name one inode, and
    // both streams meet the same moments.
    int fd[2] = {open(argv[2], O_RDONLY | O_CLOEXEC), open(argv[3], O_RDONLY | O_CLOEXEC)};
    struct stat st[2];
    if (fd[0] < 0 || fd[1] < 0 || fstat(fd[0], &st[0]) < 0 || fstat(fd[1], &st[1]) < 0 ||
        st[0].st_size != st[1].st_size || st[0].st_size % (2 * CHUNK) != 0) {
      fprintf(stderr, "seqpair: two readable files of one size (a multiple of 2 MiB)\n");
      return 1;
    }
    long long half = st[0].st_size / 2, sum[2] = {0, 0};
    off_t start[2] = {0, (off_t)half};
    if (atoi(argv[4]) == 1) { start[0] = (off_t)half; start[1] = 0; }
    for (long long at = 0; at < half; at += CHUNK) {
      for (int k = 0; k < 2; k++) {
        int f = (int)((at / CHUNK) & 1) ^ k;
        long long t = now_ns();
        ssize_t n = pread(fd[f], buf, CHUNK, start[f] + (off_t)at);
        sum[f] += now_ns() - t;
        if (n != CHUNK) { perror("pread"); return 1; }
        bytes += n;
      }
    }
    entries = 2;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long long sys = ru.ru_stime.tv_sec * 1000000000LL + ru.ru_stime.tv_usec * 1000LL;
    printf("{\"entries\":%lld,\"bytes\":%lld,\"ns\":%lld,\"ns2\":%lld,\"sysNs\":%lld}\n", entries, bytes,
           sum[0], sum[1], sys);
    return 0;
  } else { fprintf(stderr, "unknown workload %s\n", argv[1]); return 2; }
  long long ns = now_ns() - start;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  long long sys = ru.ru_stime.tv_sec * 1000000000LL + ru.ru_stime.tv_usec * 1000LL;
  printf("{\"entries\":%lld,\"bytes\":%lld,\"ns\":%lld,\"sysNs\":%lld}\n", entries, bytes, ns, sys);
  return 0;
}
`;

export interface WorkloadResult {
  entries: number;
  bytes: number;
  ms: number;
  /** The runner's own system time, ms: in the kernel for it (a kernel filesystem's CPU). */
  sysMs: number;
  /** randpair, seqpair: the second file's reads, ms (ms is then the first file's). */
  ms2?: number;
}

export type Workload =
  | ['walk' | 'readall' | 'seq', string]
  | ['rand', string, number, number]
  | ['randpair', string, string, number, number]
  | ['seqpair', string, string, 0 | 1];

export class WorkloadRunner {
  private constructor(readonly binary: string) {}

  /** Compiles the runner into `dir`. */
  static async build(dir: string): Promise<WorkloadRunner> {
    const src = join(dir, 'fsbench.c');
    const bin = join(dir, 'fsbench');
    await writeFile(src, SOURCE);
    await run('gcc', ['-O2', '-Wall', '-o', bin, src]);
    return new WorkloadRunner(bin);
  }

  async run(...w: Workload): Promise<WorkloadResult> {
    const { stdout } = await run(this.binary, w.map(String));
    const r = JSON.parse(stdout) as {
      entries: number;
      bytes: number;
      ns: number;
      ns2?: number;
      sysNs: number;
    };
    const out: WorkloadResult = { entries: r.entries, bytes: r.bytes, ms: r.ns / 1e6, sysMs: r.sysNs / 1e6 };
    if (r.ns2 !== undefined) out.ms2 = r.ns2 / 1e6;
    return out;
  }
}

/** Drops the page, dentry and inode caches (cold runs). */
export async function dropCaches(): Promise<void> {
  await run('sync', []);
  await writeFile('/proc/sys/vm/drop_caches', '3');
}
