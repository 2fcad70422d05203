/** The figures a run is judged and compared by, from its Artillery counters, its samples and the replicas' final pool stats. */
import { SAMPLE_EVERY_MS, type Sample } from './sampler.js';

/** One replica's own /stats/pool at the end of a run, or null when it did not answer. */
export type FinalPoolStats = Record<string, unknown> | null;

export interface DeriveInput {
  counters: Record<string, number>;
  samples: Sample[];
  replicaIds: string[];
  finalPoolStats: FinalPoolStats[];
  durationSeconds: number;
  containersLeftAfterStop: number;
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const num = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const den = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

const peak = (xs: number[]): number => Math.max(0, ...xs);

export function deriveMetrics({ counters, samples, replicaIds, finalPoolStats, durationSeconds, containersLeftAfterStop }: DeriveInput) {
  const created = counters['vusers.created'] ?? 0;
  const failed = counters['vusers.failed'] ?? 0;
  const peakUsers = peak(samples.map((s) => s.pool.connections));
  const rssFirst = samples[0]?.replicas.reduce((a, r) => a + r.rssMiB, 0) ?? 0;
  const rssPeak = peak(samples.map((s) => s.replicas.reduce((a, r) => a + r.rssMiB, 0)));
  return {
    users: created,
    failedUsers: failed,
    errorRatePercent: created ? Math.round((failed / created) * 10000) / 100 : 0,
    peakConnectedUsers: peakUsers,
    peakSessions: peak(samples.map((s) => s.pool.sessions)),
    /** Each replica's highest connection count: shows the spread nginx achieved. */
    peakConnectionsPerReplica: Object.fromEntries(replicaIds.map((id) => [id, peak(samples.map((s) => s.perReplica[id] ?? 0))])),
    secondsAtPeak: (samples.filter((s) => s.pool.connections >= peakUsers * 0.95).length * SAMPLE_EVERY_MS) / 1000,
    rssStartMiB: Math.round(rssFirst),
    rssPeakMiB: Math.round(rssPeak),
    rssPerConnectedUserKiB: peakUsers ? Math.round(((rssPeak - rssFirst) * 1024) / peakUsers) : null,
    rssSlopeMiBPerHourPerReplica: Object.fromEntries(
      replicaIds.map((id) => [id, Math.round(slope(samples.map((s) => [s.t / 3600, s.replicas.find((x) => x.id === id)?.rssMiB ?? 0])) * 10) / 10]),
    ),
    peakCpuPercent: peak(samples.flatMap((s) => s.replicas.map((r) => r.cpuPercent))),
    /** The replicas' CPU together, averaged over the run (% of one core): what the same users cost. */
    meanReplicasCpuPercent: samples.length ? Math.round(samples.reduce((a, s) => a + s.replicas.reduce((b, r) => b + r.cpuPercent, 0), 0) / samples.length) : 0,
    peakParked: peak(samples.map((s) => s.pool.parked ?? 0)),
    peakLoadgenCpuPercent: peak(samples.map((s) => s.loadgenCpuPercent ?? 0)),
    peakRedisUsedMiB: peak(samples.map((s) => s.redisUsedMiB ?? 0)),
    redisMaxMemoryMiB: samples[0]?.redisMaxMiB ?? null,
    peakContainers: peak(samples.map((s) => s.containers)),
    /** The most spares the replicas aimed for together (POOL_MIN_SIZE each, more as arrivals rose). */
    peakSpareTarget: peak(samples.map((s) => s.pool.spareTarget ?? 0)),
    /** Per replica: warm/cold acquire p50/p95/p99 over its last 1024 acquires, sandboxes started, start latency. */
    replicaPools: finalPoolStats.map((p) =>
      p
        ? { replica: p.replica, acquired: p.acquired, created: p.created, failed: p.failed, acquireLatencyMs: p.acquireLatencyMs, createLatencyMs: p.createLatencyMs }
        : null,
    ),
    sandboxesStartedPerSecond: Math.round((finalPoolStats.reduce((n, p) => n + (typeof p?.created === 'number' ? p.created : 0), 0) / Math.max(1, durationSeconds)) * 100) / 100,
    containersLeftAfterStop,
  };
}

export type Derived = ReturnType<typeof deriveMetrics>;
