/**
 * Events a user may send per second, across all of their sockets on this
 * replica (a token bucket per user, burst twice the rate): opening more tabs
 * buys no more budget. Floods are refused, not queued.
 */
export interface EventBudget {
  /** Takes one event from the user's budget; false when it is spent. */
  take(userId: string, nowMs?: number): boolean;
  /** A socket of the user connected / disconnected: the bucket lives while the user has sockets here. */
  attach(userId: string): void;
  detach(userId: string): void;
  /** Users with a bucket (for tests and metrics). */
  size(): number;
}

export function createEventBudget(options: { eventsPerSecond: number }): EventBudget {
  const rate = options.eventsPerSecond;
  const burst = rate * 2;
  const buckets = new Map<string, { tokens: number; refilledAtMs: number; sockets: number }>();
  return {
    take(userId, nowMs = Date.now()) {
      const b = buckets.get(userId);
      if (!b) return false;
      b.tokens = Math.min(burst, b.tokens + ((nowMs - b.refilledAtMs) / 1000) * rate);
      b.refilledAtMs = nowMs;
      if (b.tokens < 1) return false;
      b.tokens--;
      return true;
    },
    attach(userId) {
      const b = buckets.get(userId);
      if (b) b.sockets++;
      else buckets.set(userId, { tokens: burst, refilledAtMs: Date.now(), sockets: 1 });
    },
    detach(userId) {
      const b = buckets.get(userId);
      if (!b) return;
      // Dropped with the user's last socket here; until then every tab draws on one bucket.
      if (--b.sockets <= 0) buckets.delete(userId);
    },
    size: () => buckets.size,
  };
}
