// Stats as containerd expects them: an Any of io.containerd.cgroups.v1.Metrics on a cgroup v1 (or
// hybrid) host, io.containerd.cgroups.v2.Metrics on a pure cgroup v2 host — built from runc's
// `events --stats` numbers (which runc reads from whichever hierarchy the container uses).
import { create, toBinary } from '@bufbuild/protobuf';
import { AnySchema, type Any } from '@bufbuild/protobuf/wkt';

import { MetricsSchema as V1Metrics } from '../proto/generated/github.com/containerd/cgroups/stats/v1/metrics_pb.js';
import { MetricsSchema as V2Metrics } from '../proto/generated/github.com/containerd/cgroups/v2/stats/metrics_pb.js';
import type { MemoryEntry, RuncStats } from './runc.js';

function n(v: number | undefined): bigint {
  return v === undefined || !Number.isFinite(v) || v < 0 ? 0n : BigInt(Math.trunc(v));
}

function entry(e: MemoryEntry | undefined): { limit: bigint; usage: bigint; max: bigint; failcnt: bigint } {
  return { limit: n(e?.limit), usage: n(e?.usage), max: n(e?.max), failcnt: n(e?.failcnt) };
}

export function v1Metrics(s: RuncStats): Any {
  const raw = s.memory?.raw ?? {};
  const m = create(V1Metrics, {
    pids: { current: n(s.pids?.current), limit: n(s.pids?.limit) },
    cpu: {
      usage: {
        total: n(s.cpu?.usage?.total),
        kernel: n(s.cpu?.usage?.kernel),
        user: n(s.cpu?.usage?.user),
        perCpu: (s.cpu?.usage?.percpu ?? []).map(n),
      },
      throttling: {
        periods: n(s.cpu?.throttling?.periods),
        throttledPeriods: n(s.cpu?.throttling?.throttledPeriods),
        throttledTime: n(s.cpu?.throttling?.throttledTime),
      },
    },
    memory: {
      cache: n(raw.cache ?? s.memory?.cache),
      rss: n(raw.rss),
      rssHuge: n(raw.rss_huge),
      mappedFile: n(raw.mapped_file),
      dirty: n(raw.dirty),
      writeback: n(raw.writeback),
      pgPgIn: n(raw.pgpgin),
      pgPgOut: n(raw.pgpgout),
      pgFault: n(raw.pgfault),
      pgMajFault: n(raw.pgmajfault),
      inactiveAnon: n(raw.inactive_anon),
      activeAnon: n(raw.active_anon),
      inactiveFile: n(raw.inactive_file),
      activeFile: n(raw.active_file),
      unevictable: n(raw.unevictable),
      hierarchicalMemoryLimit: n(raw.hierarchical_memory_limit),
      hierarchicalSwapLimit: n(raw.hierarchical_memsw_limit),
      totalCache: n(raw.total_cache),
      totalRss: n(raw.total_rss),
      totalMappedFile: n(raw.total_mapped_file),
      totalInactiveFile: n(raw.total_inactive_file),
      totalActiveFile: n(raw.total_active_file),
      usage: entry(s.memory?.usage),
      swap: entry(s.memory?.swap),
      kernel: entry(s.memory?.kernel),
      kernelTcp: entry(s.memory?.kernelTCP),
    },
  });
  return create(AnySchema, { typeUrl: V1Metrics.typeName, value: toBinary(V1Metrics, m) });
}

export function v2Metrics(s: RuncStats): Any {
  const raw = s.memory?.raw ?? {};
  const m = create(V2Metrics, {
    pids: { current: n(s.pids?.current), limit: n(s.pids?.limit) },
    cpu: {
      // runc reports nanoseconds; cgroup v2's cpu.stat (and containerd's v2 Metrics) microseconds.
      usageUsec: n((s.cpu?.usage?.total ?? 0) / 1000),
      userUsec: n((s.cpu?.usage?.user ?? 0) / 1000),
      systemUsec: n((s.cpu?.usage?.kernel ?? 0) / 1000),
      nrPeriods: n(s.cpu?.throttling?.periods),
      nrThrottled: n(s.cpu?.throttling?.throttledPeriods),
      throttledUsec: n((s.cpu?.throttling?.throttledTime ?? 0) / 1000),
    },
    memory: {
      anon: n(raw.anon),
      file: n(raw.file),
      kernelStack: n(raw.kernel_stack),
      slab: n(raw.slab),
      sock: n(raw.sock),
      shmem: n(raw.shmem),
      fileMapped: n(raw.file_mapped),
      fileDirty: n(raw.file_dirty),
      fileWriteback: n(raw.file_writeback),
      inactiveAnon: n(raw.inactive_anon),
      activeAnon: n(raw.active_anon),
      inactiveFile: n(raw.inactive_file),
      activeFile: n(raw.active_file),
      unevictable: n(raw.unevictable),
      pgfault: n(raw.pgfault),
      pgmajfault: n(raw.pgmajfault),
      usage: n(s.memory?.usage?.usage),
      usageLimit: n(s.memory?.usage?.limit),
      swapUsage: n(s.memory?.swap?.usage),
      swapLimit: n(s.memory?.swap?.limit),
    },
  });
  return create(AnySchema, { typeUrl: V2Metrics.typeName, value: toBinary(V2Metrics, m) });
}
