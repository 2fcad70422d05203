import { QUOTA_WINDOWS } from '../protocol/errors.js';
import { QUOTA_TTL_MS, WINDOW_LAYOUT, bucketCounts, decide, fieldOf, parseField, type Bucket, type Clock, type QuotaStore } from './quota-store.js';

/**
 * Tool-call counters of a single replica (no REDIS_URL): the same buckets and
 * the same decision as the Redis store, in a map. Bounded like it: a user's
 * buckets that left their window are dropped on the user's next call, and a
 * user with no call for QUOTA_TTL_MS is dropped by a periodic sweep.
 */
export function createMemoryQuotaStore(options: { now?: Clock; sweepIntervalMs?: number } = {}): QuotaStore {
  const now = options.now ?? Date.now;
  const users = new Map<string, { counters: Map<string, number>; lastCallAtMs: number }>();

  /** The user's buckets still inside their windows; the others are deleted. */
  function live(userId: string, nowMs: number): Bucket[] {
    const entry = users.get(userId);
    if (!entry) return [];
    const buckets: Bucket[] = [];
    for (const [field, count] of entry.counters) {
      const parsed = parseField(field);
      if (parsed && bucketCounts(parsed.window, parsed.index, nowMs)) buckets.push({ ...parsed, count });
      else entry.counters.delete(field);
    }
    return buckets;
  }

  const sweep = setInterval(() => {
    const nowMs = now();
    for (const [userId, entry] of users) if (nowMs - entry.lastCallAtMs >= QUOTA_TTL_MS) users.delete(userId);
  }, options.sweepIntervalMs ?? 600_000);
  sweep.unref();

  return {
    kind: 'memory',
    async check(userId, limits, { count }) {
      const nowMs = now();
      const outcome = decide(live(userId, nowMs), limits, nowMs, count);
      if (outcome.counted.length > 0) {
        let entry = users.get(userId);
        if (!entry) users.set(userId, (entry = { counters: new Map(), lastCallAtMs: nowMs }));
        entry.lastCallAtMs = nowMs;
        for (const b of outcome.counted) {
          const field = fieldOf(b.window, b.index);
          entry.counters.set(field, (entry.counters.get(field) ?? 0) + b.count);
        }
      }
      const { counted: _counted, ...result } = outcome;
      void _counted;
      return result;
    },
    async refund(userId, countedAtMs) {
      const entry = users.get(userId);
      if (!entry) return;
      for (const window of QUOTA_WINDOWS) {
        const field = fieldOf(window, Math.floor(countedAtMs / WINDOW_LAYOUT[window].bucketMs));
        const n = entry.counters.get(field);
        if (n === undefined) continue;
        if (n <= 1) entry.counters.delete(field);
        else entry.counters.set(field, n - 1);
      }
    },
    async close() {
      clearInterval(sweep);
      users.clear();
    },
  };
}
