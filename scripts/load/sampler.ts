/**
 * Samples a running cluster every 2 s: each replica's RSS and CPU, the
 * cluster-wide pool stats, Redis memory, the sandbox containers, and the
 * load generator's own CPU.
 */
import { Redis } from 'ioredis';
import { createDockerRuntime } from '../../src/runtime/docker-runtime.js';
import { APP_LABEL_VALUE, LABELS } from '../../src/runtime/types.js';
import { sleep } from '../../src/util/async.js';
import type { ClusterState } from '../lib/cluster-process.js';
import { clockTicksPerSecond, processUsage } from '../lib/proc-stat.js';

export const SAMPLE_EVERY_MS = 2000;

export interface Sample {
  t: number;
  replicas: Array<{ id: string; rssMiB: number; cpuPercent: number }>;
  pool: {
    idle: number;
    active: number;
    total: number;
    pending: number;
    connections: number;
    sessions: number;
    /** Spares the replicas aim for (POOL_MIN_SIZE or more for the recent arrival rate), summed. */
    spareTarget?: number;
    /** Sandboxes starting, and used ones being removed. */
    creating?: number;
    /** Sandboxes paused and kept for their users (PARK_MAX). */
    parked?: number;
    removing?: number;
  };
  /** Connected sockets per replica (from its heartbeat). */
  perReplica: Record<string, number>;
  redisUsedMiB: number | null;
  redisMaxMiB: number | null;
  containers: number;
  /** CPU of the Artillery process: it shares the machine, so a saturated generator caps what a run can show. */
  loadgenCpuPercent?: number;
}

export interface Sampler {
  samples: Sample[];
  watchLoadgen(pid: number): void;
  stop(): Promise<void>;
}

export function startSampler(state: ClusterState): Sampler {
  const samples: Sample[] = [];
  const runtime = createDockerRuntime();
  const redis = new Redis(state.redisUrl, { maxRetriesPerRequest: 1, lazyConnect: false });
  redis.on('error', () => undefined);
  const ticksPerSecond = clockTicksPerSecond();
  const last = new Map<number, { ticks: number; at: number }>();
  const started = Date.now();
  let running = true;
  let loadgenPid: number | undefined;
  const cpuOf = (pid: number, at: number): { rssMiB: number; cpuPercent: number } => {
    const s = processUsage(pid);
    const prev = last.get(pid);
    let cpuPercent = 0;
    if (s && prev) cpuPercent = Math.round(((s.cpuTicks - prev.ticks) / ticksPerSecond / ((at - prev.at) / 1000)) * 1000) / 10;
    if (s) last.set(pid, { ticks: s.cpuTicks, at });
    return { rssMiB: s?.rssMiB ?? 0, cpuPercent };
  };
  const loop = (async () => {
    while (running) {
      const at = Date.now();
      const reps = state.replicas.map((r) => ({ id: r.id, ...cpuOf(r.pid, at) }));
      const loadgenCpuPercent = loadgenPid === undefined ? undefined : cpuOf(loadgenPid, at).cpuPercent;
      // An error page from nginx (the cluster overloaded) is a gap in the samples, not a crash of the runner.
      const cluster = (await fetch(`${state.url}/stats/pool?scope=cluster`).then((r) => (r.ok ? r.json() : null)).catch(() => null)) as {
        totals?: Record<string, number>;
        replicas?: Array<{ replica: string; connections?: number }>;
      } | null;
      const info = await redis.info('memory').catch(() => '');
      const mib = (key: string): number | null => {
        const v = new RegExp(`^${key}:(\\d+)`, 'm').exec(info)?.[1];
        return v === undefined ? null : Math.round((Number(v) / 1048576) * 10) / 10;
      };
      const containers = (await runtime.list({ [LABELS.app]: APP_LABEL_VALUE }).catch(() => [])).length;
      const totals = cluster?.totals ?? {};
      samples.push({
        t: Math.round((at - started) / 100) / 10,
        replicas: reps,
        pool: {
          idle: totals.idle ?? 0,
          active: totals.active ?? 0,
          total: totals.total ?? 0,
          pending: totals.pending ?? 0,
          connections: totals.connections ?? 0,
          sessions: totals.sessions ?? 0,
          spareTarget: totals.spareTarget ?? 0,
          creating: totals.creating ?? 0,
          parked: totals.parked ?? 0,
          removing: totals.removing ?? 0,
        },
        perReplica: Object.fromEntries((cluster?.replicas ?? []).map((r) => [r.replica, r.connections ?? 0])),
        redisUsedMiB: mib('used_memory'),
        redisMaxMiB: mib('maxmemory'),
        containers,
        loadgenCpuPercent,
      });
      await sleep(Math.max(0, SAMPLE_EVERY_MS - (Date.now() - at)));
    }
  })();
  return {
    samples,
    watchLoadgen(pid) {
      loadgenPid = pid;
    },
    async stop() {
      running = false;
      await loop;
      redis.disconnect();
    },
  };
}
