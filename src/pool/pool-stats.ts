import { z } from 'zod';

const percentiles = z.object({ p50: z.number().nullable(), p95: z.number().nullable(), p99: z.number().nullable() });

/**
 * A pool's numbers: the seed's stats shape (idle, active, total, maxPoolSize,
 * minPoolSize) plus sandpool's extras. Declared once, as a schema: /stats/pool
 * serves it, and every replica publishes it with its heartbeat, where the
 * others read it back validated (cluster/replica-record.ts).
 */
export const poolStatsSchema = z.object({
  idle: z.number(),
  active: z.number(),
  /** Sandboxes frozen for their users (PARK_MAX), counted in total but not in idle or active. */
  parked: z.number(),
  /** PARK_MAX. */
  maxParked: z.number(),
  total: z.number(),
  maxPoolSize: z.number(),
  minPoolSize: z.number(),
  /** acquire() calls waiting for a sandbox. */
  pending: z.number(),
  /** Sandboxes starting right now. */
  creating: z.number(),
  /** Spares (idle or starting) kept right now: minPoolSize, or more for the recent arrival rate. */
  spareTarget: z.number(),
  /** Peak acquires per second within POOL_DEMAND_WINDOW_MS (10 s averages), which spareTarget follows. */
  arrivalRate: z.number(),
  /** Used sandboxes queued for removal or being removed. */
  removing: z.number(),
  /** Leases whose sandbox was found dead on first use and replaced transparently. */
  replaced: z.number(),
  enabled: z.boolean(),
  runtime: z.enum(['docker', 'process']),
  isolated: z.boolean(),
  ready: z.boolean(),
  draining: z.boolean(),
  created: z.number(),
  destroyed: z.number(),
  failed: z.number(),
  acquired: z.number(),
  consecutiveFailures: z.number(),
  lastError: z.string().nullable(),
  acquireLatencyMs: percentiles,
  createLatencyMs: percentiles,
});

export type PoolStats = z.infer<typeof poolStatsSchema>;
