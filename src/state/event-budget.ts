import type { Redis } from 'ioredis';

/**
 * Events a user may send per second across all of their sockets, on every
 * replica (a token bucket per user, burst twice the rate): opening more tabs,
 * or spreading them over replicas with `?uid=`, buys no more budget. Floods
 * are refused, not queued.
 */
export interface EventBudget {
  /** Takes one event from the user's budget; false when it is spent. */
  take(userId: string): Promise<boolean>;
}

/** One replica's buckets, in memory; a bucket that has refilled is dropped (it is the same as none). */
export function createMemoryEventBudget(options: { eventsPerSecond: number; now?: () => number }): EventBudget & { size(): number } {
  const rate = options.eventsPerSecond;
  const burst = rate * 2;
  const now = options.now ?? Date.now;
  const refillMs = (burst / rate) * 1000;
  const buckets = new Map<string, { tokens: number; refilledAtMs: number }>();
  let takes = 0;
  return {
    async take(userId) {
      const t = now();
      // Bounded memory: every so often, forget buckets that are full again.
      if (++takes % 1000 === 0) for (const [u, b] of buckets) if (t - b.refilledAtMs >= refillMs) buckets.delete(u);
      const b = buckets.get(userId) ?? { tokens: burst, refilledAtMs: t };
      b.tokens = Math.min(burst, b.tokens + ((t - b.refilledAtMs) / 1000) * rate);
      b.refilledAtMs = t;
      buckets.set(userId, b);
      if (b.tokens < 1) return false;
      b.tokens--;
      return true;
    },
    size: () => buckets.size,
  };
}

// A token bucket in one hash per user, on Redis's clock (replicas' clocks may
// differ). Expires once it would be full again: an idle user costs nothing.
const TAKE = `
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(b[1]), tonumber(b[2])
if tokens == nil or at == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * rate)
local ok = 0
if tokens >= 1 then
  tokens = tokens - 1
  ok = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return ok`;

/**
 * The budget in Redis, shared by every replica. While Redis is not connected
 * (or a command fails), this replica's own buckets stand in at once: a flood
 * is still bounded, per replica, and no event waits for Redis's reconnects.
 */
export function createRedisEventBudget(options: { redis: Redis; prefix: string; eventsPerSecond: number }): EventBudget {
  const { redis } = options;
  const rate = options.eventsPerSecond;
  const fallback = createMemoryEventBudget({ eventsPerSecond: rate });
  // Only a connection that was up and dropped is an outage; before the first
  // connect (start-up) a command waits in ioredis's queue like every other.
  let wasReady = redis.status === 'ready';
  redis.on('ready', () => {
    wasReady = true;
  });
  return {
    async take(userId) {
      // Lost the connection: no command queued behind reconnect attempts (each event would wait for them).
      if (redis.status !== 'ready' && wasReady) return fallback.take(userId);
      try {
        return Number(await redis.eval(TAKE, 1, `${options.prefix}events:${userId}`, rate, rate * 2)) === 1;
      } catch {
        return fallback.take(userId);
      }
    },
  };
}
