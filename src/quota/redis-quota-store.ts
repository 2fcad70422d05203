import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { QUOTA_WINDOWS, type QuotaWindow } from '../protocol/errors.js';
import { QUOTA_TTL_MS, WINDOW_LAYOUT, fieldOf, type Clock, type QuotaOutcome, type QuotaStore, type WindowUsage } from './quota-store.js';

/**
 * decide() of quota-store.ts inside Redis, so that the check and the count
 * are one atomic step for every replica: one hash per user (field = window
 * tag + bucket index, value = calls), buckets that left their window deleted
 * on the way. One round trip per call (EVALSHA).
 *
 * ARGV: now, count (0|1), ttl, then per window (hour, day, month):
 * windowMs, bucketMs, limit (-1 = unlimited).
 * Returns: admitted (1|0), refused window (1-3, 0 = none), its limit, retry
 * after (ms), then per window: used, oldest counted bucket index (-1 = none).
 */
const CHECK = `
local key = KEYS[1]
local now = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local tags = {'h', 'd', 'm'}
local W, B, L = {}, {}, {}
for w = 1, 3 do
  W[w] = tonumber(ARGV[3 + (w - 1) * 3 + 1])
  B[w] = tonumber(ARGV[3 + (w - 1) * 3 + 2])
  L[w] = tonumber(ARGV[3 + (w - 1) * 3 + 3])
end
local flat = redis.call('HGETALL', key)
local used, oldest, buckets, stale = {0, 0, 0}, {-1, -1, -1}, {{}, {}, {}}, {}
for i = 1, #flat, 2 do
  local f = flat[i]
  local tag = string.sub(f, 1, 1)
  local w = (tag == 'h' and 1) or (tag == 'd' and 2) or (tag == 'm' and 3) or 0
  local idx = tonumber(string.sub(f, 2))
  local n = tonumber(flat[i + 1])
  if w > 0 and idx and n and (idx + 1) * B[w] > now - W[w] then
    used[w] = used[w] + n
    table.insert(buckets[w], {idx, n})
    if n > 0 and (oldest[w] < 0 or idx < oldest[w]) then oldest[w] = idx end
  else
    table.insert(stale, f)
  end
end
if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
local refused, refusedLimit, retry = 0, 0, 0
for w = 1, 3 do
  if L[w] >= 0 and used[w] + 1 > L[w] then
    local need = used[w] + 1 - L[w]
    table.sort(buckets[w], function(a, b) return a[1] < b[1] end)
    local seen, r = 0, W[w]
    for _, bk in ipairs(buckets[w]) do
      seen = seen + bk[2]
      if seen >= need then
        r = (bk[1] + 1) * B[w] + W[w] - now
        break
      end
    end
    if refused == 0 or r > retry then
      refused, refusedLimit, retry = w, L[w], r
    end
  end
end
if refused == 0 and count > 0 then
  for w = 1, 3 do
    local idx = math.floor(now / B[w])
    redis.call('HINCRBY', key, tags[w] .. string.format('%d', idx), 1)
    used[w] = used[w] + 1
    if oldest[w] < 0 or idx < oldest[w] then oldest[w] = idx end
  end
  redis.call('PEXPIRE', key, ttl)
end
return {refused == 0 and 1 or 0, refused, refusedLimit, retry, used[1], oldest[1], used[2], oldest[2], used[3], oldest[3]}`;

// Takes one call back from the buckets of the moment it was counted, never below zero.
const REFUND = `
for i = 1, #ARGV do
  local n = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if n > 1 then redis.call('HINCRBY', KEYS[1], ARGV[i], -1) elseif n == 1 then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 1`;

const sha1 = (text: string): string => createHash('sha1').update(text).digest('hex');

/** EVALSHA, falling back to EVAL once when this Redis has not seen the script (a restart, a new server). */
async function runScript(redis: Redis, script: string, sha: string, keys: string[], args: Array<string | number>): Promise<unknown> {
  try {
    return await redis.evalsha(sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return redis.eval(script, keys.length, ...keys, ...args);
  }
}

export function createRedisQuotaStore(options: { redis: Redis; prefix?: string; now?: Clock }): QuotaStore {
  const { redis } = options;
  const now = options.now ?? Date.now;
  const keyOf = (userId: string): string => `${options.prefix ?? 'sandpool:'}quota:${userId}`;
  const checkSha = sha1(CHECK);
  const refundSha = sha1(REFUND);

  return {
    kind: 'redis',
    async check(userId, limits, { count }) {
      const nowMs = now();
      const args: Array<string | number> = [nowMs, count ? 1 : 0, QUOTA_TTL_MS];
      for (const w of QUOTA_WINDOWS) args.push(WINDOW_LAYOUT[w].windowMs, WINDOW_LAYOUT[w].bucketMs, limits[w] ?? -1);
      const reply = (await runScript(redis, CHECK, checkSha, [keyOf(userId)], args)) as number[];
      const [admitted, refusedAt, refusedLimit, retryAfterMs] = reply;
      const usageOf = (w: QuotaWindow, i: number): WindowUsage => {
        const used = Number(reply[4 + i * 2]);
        const oldest = Number(reply[5 + i * 2]);
        const { windowMs, bucketMs } = WINDOW_LAYOUT[w];
        return { used, limit: limits[w], resetsInMs: oldest < 0 ? 0 : Math.max(0, (oldest + 1) * bucketMs + windowMs - nowMs) };
      };
      const refusedWindow = QUOTA_WINDOWS[Number(refusedAt) - 1];
      const outcome: QuotaOutcome = {
        admitted: admitted === 1,
        atMs: nowMs,
        usage: { hour: usageOf('hour', 0), day: usageOf('day', 1), month: usageOf('month', 2) },
      };
      if (refusedWindow) outcome.refusal = { window: refusedWindow, limit: Number(refusedLimit), retryAfterMs: Number(retryAfterMs) };
      return outcome;
    },
    async refund(userId, countedAtMs) {
      const fields = QUOTA_WINDOWS.map((w) => fieldOf(w, Math.floor(countedAtMs / WINDOW_LAYOUT[w].bucketMs)));
      await runScript(redis, REFUND, refundSha, [keyOf(userId)], fields);
    },
    async close() {
      /* the connection is the replica's */
    },
  };
}
