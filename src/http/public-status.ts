import type { PoolStats } from '../pool/pool-stats.js';
import type { NotReadyReason } from './readiness.js';

/**
 * What `GET /status` tells anyone, signed in or not: whether this replica can
 * serve and how its sandbox pool is doing, in coarse terms. What a user can
 * act on (start now, expect a cold start, expect a wait), nothing that
 * describes the deployment: no replica id, pool sizes, runtime, image, errors
 * or latencies (those are `/stats/pool`'s, internal).
 */
export interface PublicStatus {
  /** `ready` and `busy` serve; `busy`: a new sandbox would wait (requests queued, or none warm and no room to start one). */
  status: 'ready' | 'busy' | 'warming' | 'draining' | 'unavailable';
  /** The same answer as `GET /ready`'s status code. */
  ready: boolean;
  /**
   * Shares of this replica's sandbox capacity in percent, in steps of 10 that
   * add up to 100 (all 0 when it has no capacity). A share that is not zero
   * shows as at least 10.
   */
  sandboxes: {
    inUse: number;
    warm: number;
    starting: number;
    free: number;
    /** A warm sandbox can be handed out right now (no cold start). */
    warmAvailable: boolean;
  };
  /** Requests waiting for a sandbox: none, 1-4, 5 or more. */
  waiting: 'none' | 'few' | 'many';
}

/** Coarse view of this replica: its pool's stats, why it is not ready (as `/ready` says), and whether it is shutting down. */
export function toPublicStatus(pool: PoolStats, notReadyReasons: readonly NotReadyReason[], shuttingDown: boolean): PublicStatus {
  const free = Math.max(0, pool.maxPoolSize - pool.active - pool.idle - pool.creating);
  const [inUse = 0, warm = 0, starting = 0, freeShare = 0] = tenths([pool.active, pool.idle, pool.creating, free]).map((t) => t * 10);
  const ready = notReadyReasons.length === 0 && !shuttingDown;
  const full = pool.idle === 0 && free === 0;
  let status: PublicStatus['status'];
  if (shuttingDown || pool.draining) status = 'draining';
  else if (ready) status = pool.pending > 0 || full ? 'busy' : 'ready';
  // Warming is the only thing in the way: the pool has not reached its minimum yet and nothing failed.
  else if (notReadyReasons.length === 1 && notReadyReasons[0]?.code === 'POOL_WARMING') status = 'warming';
  else status = 'unavailable';
  return {
    status,
    ready,
    sandboxes: { inUse, warm, starting, free: freeShare, warmAvailable: pool.idle > 0 },
    waiting: pool.pending === 0 ? 'none' : pool.pending < 5 ? 'few' : 'many',
  };
}

/**
 * Splits 10 tenths over the counts in proportion (largest remainder), except
 * that a count above zero always gets at least one tenth. All zeros when the
 * counts add up to zero.
 */
export function tenths(counts: readonly number[]): number[] {
  const values = counts.map((n) => (Number.isFinite(n) && n > 0 ? n : 0));
  const total = values.reduce((a, b) => a + b, 0);
  if (total === 0) return values.map(() => 0);
  const exact = values.map((n) => (n * 10) / total);
  const out = exact.map((x, i) => ((values[i] ?? 0) > 0 ? Math.max(1, Math.floor(x)) : 0));
  const remainder = (i: number): number => (exact[i] ?? 0) - (out[i] ?? 0);
  const byRemainder = out.map((_, i) => i).sort((a, b) => remainder(b) - remainder(a));
  let left = 10 - out.reduce((a, b) => a + b, 0);
  for (const i of byRemainder) {
    if (left <= 0) break;
    out[i] = (out[i] ?? 0) + 1;
    left--;
  }
  // The minimum of one tenth overshot: take it back from the largest shares.
  while (left < 0) {
    const largest = out.reduce((best, v, i) => (v > (out[best] ?? 0) ? i : best), 0);
    out[largest] = (out[largest] ?? 0) - 1;
    left++;
  }
  return out;
}
