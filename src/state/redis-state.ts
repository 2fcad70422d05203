import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { parseReplicaRecord, type ReplicaRecord } from '../cluster/replica-record.js';
import type { Logger } from '../logger.js';
import { trimHistory, type ChatMessage } from '../model/conversation.js';
import { createRedisEventBudget } from './event-budget.js';
import type { SlotLimiter } from './slot-limiter.js';
import type { PendingCall, SharedState } from './types.js';

/** Options of createRedisState. */
export interface RedisStateOptions {
  redis: Redis;
  maxRequestsPerUser: number;
  maxSocketsPerUser: number;
  /** SOCKET_EVENTS_PER_SECOND. Default 20. */
  eventsPerSecond?: number;
  /** Key prefix, so several deployments (or tests) can share one Redis. Default "sandpool:". */
  prefix?: string;
  /** A slot (request in flight, socket) expires this long after its last renewal (a dead replica's slots free themselves). Default 30000. */
  slotTtlMs?: number;
  /** Conversations are forgotten this long after their last message. Default 24 h. */
  historyTtlMs?: number;
  /** Where records other replicas published in a shape this one does not accept are reported. */
  logger: Logger;
}

// Takes a slot unless the user already holds `max` live ones. Expired slots
// (their replica died and stopped renewing) are dropped first.
const ACQUIRE = `
local key, now, max, expires, id, ttl = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZSCORE', key, id) then
  redis.call('ZADD', key, expires, id)
  return 1
end
if redis.call('ZCARD', key) >= max then return 0 end
redis.call('ZADD', key, expires, id)
redis.call('PEXPIRE', key, ttl)
return 1`;

// Claims ownership unless another replica holds it, in one step: a GET after a
// failed SET NX could see the key expire in between and let two replicas win.
const CLAIM = `
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return current`;

// Deletes a key only while it still holds this replica's value.
const RELEASE_IF_MINE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * Named slots per user in a sorted set (score = expiry), renewed by the
 * replica holding them: a dead replica's slots expire on their own.
 */
function createRedisSlots(redis: Redis, keyOf: (userId: string) => string, max: number, slotTtlMs: number): SlotLimiter & { close(): void } {
  // Slots this replica holds, renewed well before they expire.
  const held = new Map<string, Set<string>>();
  const renewTimer = setInterval(() => {
    if (held.size === 0 || redis.status !== 'ready') return;
    const expires = Date.now() + slotTtlMs;
    const pipeline = redis.pipeline();
    for (const [userId, ids] of held) {
      // Re-adds a slot Redis lost (a restart without persistence) so the limit
      // keeps holding. A release cannot be undone by this: both go over one
      // connection in order, and a released id has left `held` already.
      for (const id of ids) pipeline.zadd(keyOf(userId), expires, id);
      pipeline.pexpire(keyOf(userId), slotTtlMs);
    }
    pipeline.exec().catch(() => undefined);
  }, Math.max(200, Math.floor(slotTtlMs / 3)));
  renewTimer.unref();
  return {
    async tryAcquire(userId, slotId, cap = max) {
      const now = Date.now();
      const ok = await redis.eval(ACQUIRE, 1, keyOf(userId), now, cap, now + slotTtlMs, slotId, slotTtlMs);
      if (ok !== 1) return false;
      let mine = held.get(userId);
      if (!mine) held.set(userId, (mine = new Set()));
      mine.add(slotId);
      return true;
    },
    async release(userId, slotId) {
      const mine = held.get(userId);
      mine?.delete(slotId);
      if (mine?.size === 0) held.delete(userId);
      await redis.zrem(keyOf(userId), slotId);
    },
    async count(userId) {
      return redis.zcount(keyOf(userId), `(${Date.now()}`, '+inf');
    },
    close() {
      clearInterval(renewTimer);
    },
  };
}

/** A replica's entry in the index: `{"at":ms,"node":...}`, or the bare time an earlier version wrote. */
function parseSeen(value: string): { lastSeenAtMs: number; node?: string } {
  if (!value.startsWith('{')) return { lastSeenAtMs: Number(value) };
  try {
    const parsed = JSON.parse(value) as { at?: unknown; node?: unknown };
    return { lastSeenAtMs: Number(parsed.at), ...(typeof parsed.node === 'string' ? { node: parsed.node } : {}) };
  } catch {
    return { lastSeenAtMs: Number.NaN };
  }
}

export function createRedisState(options: RedisStateOptions): SharedState {
  const { redis } = options;
  const p = options.prefix ?? 'sandpool:';
  const slotTtlMs = options.slotTtlMs ?? 30_000;
  const historyTtlMs = options.historyTtlMs ?? 86_400_000;
  const k = {
    inflight: (u: string) => `${p}inflight:${u}`,
    sockets: (u: string) => `${p}sockets:${u}`,
    // The key keeps its first name ("session"): conversations already stored stay found.
    conversation: (u: string) => `${p}session:${u}`,
    history: (u: string) => `${p}history:${u}`,
    owner: (u: string) => `${p}owner:${u}`,
    pending: (u: string) => `${p}pending:${u}`,
    replica: (id: string) => `${p}replica:${id}`,
    /** Hash: replica id -> its last beat (ms), until buried. */
    replicas: `${p}replicas-seen`,
  };

  // Another replica's malformed record is reported once per problem, not on every read (each heartbeat).
  const reported = new Map<string, string>();
  const trusted = (id: string, text: string): ReplicaRecord[] => {
    const read = parseReplicaRecord(text, id);
    if ('record' in read) {
      reported.delete(id);
      return [read.record];
    }
    if (reported.get(id) !== read.problem) {
      reported.set(id, read.problem);
      options.logger.warn({ replica: id.slice(0, 64), problem: read.problem.slice(0, 512) }, 'skipped a replica record of an unexpected shape (another version, or not a replica)');
    }
    return [];
  };

  const limiter = createRedisSlots(redis, k.inflight, options.maxRequestsPerUser, slotTtlMs);
  const sockets = createRedisSlots(redis, k.sockets, options.maxSocketsPerUser, slotTtlMs);

  return {
    kind: 'redis',
    limiter,
    sockets,
    events: createRedisEventBudget({ redis, prefix: p, eventsPerSecond: options.eventsPerSecond ?? 20 }),
    conversations: {
      async conversationId(userId) {
        const fresh = randomBytes(16).toString('base64url');
        await redis.set(k.conversation(userId), fresh, 'PX', historyTtlMs, 'NX');
        const id = await redis.get(k.conversation(userId));
        await redis.pexpire(k.conversation(userId), historyTtlMs);
        return id ?? fresh;
      },
      async history(userId) {
        const raw = await redis.lrange(k.history(userId), 0, -1);
        const messages: ChatMessage[] = [];
        for (const line of raw) {
          try {
            messages.push(JSON.parse(line) as ChatMessage);
          } catch {
            /* a corrupt entry is skipped, not fatal */
          }
        }
        // Storage is trimmed by count only; cut at a user turn here.
        return messages[0]?.role === 'user' ? messages : trimHistory(messages, messages.length - 1);
      },
      async append(userId, messages, maxMessages) {
        if (messages.length === 0) return;
        await redis
          .multi()
          .rpush(k.history(userId), ...messages.map((m) => JSON.stringify(m)))
          .ltrim(k.history(userId), -maxMessages, -1)
          .pexpire(k.history(userId), historyTtlMs)
          .exec();
      },
    },
    owners: {
      async claim(userId, replicaId, ttlMs) {
        return String(await redis.eval(CLAIM, 1, k.owner(userId), replicaId, ttlMs));
      },
      async owner(userId) {
        return (await redis.get(k.owner(userId))) ?? undefined;
      },
      async release(userId, replicaId) {
        await redis.eval(RELEASE_IF_MINE, 1, k.owner(userId), replicaId);
      },
      async renew(userIds, replicaId, ttlMs) {
        if (userIds.length === 0) return [];
        // A claim, not a plain extend: a record Redis lost (a restart without
        // persistence) is re-created, so a second tab cannot get a second sandbox.
        const pipeline = redis.pipeline();
        for (const u of userIds) pipeline.eval(CLAIM, 1, k.owner(u), replicaId, ttlMs);
        const results = (await pipeline.exec()) ?? [];
        return userIds.filter((_, i) => {
          const [err, owner] = results[i] ?? [null, replicaId];
          return err === null && String(owner) !== replicaId;
        });
      },
    },
    pending: {
      async add(userId, call) {
        // The hash lives as long as its longest-lived call.
        await redis
          .multi()
          .hset(k.pending(userId), call.callId, JSON.stringify(call))
          .pexpireat(k.pending(userId), call.expiresAtMs + 1000, 'GT')
          .pexpireat(k.pending(userId), call.expiresAtMs + 1000, 'NX')
          .exec();
      },
      async remove(userId, callId) {
        await redis.hdel(k.pending(userId), callId);
      },
      async list(userId) {
        const all = await redis.hvals(k.pending(userId));
        const now = Date.now();
        return all.map((v) => JSON.parse(v) as PendingCall).filter((c) => c.expiresAtMs > now);
      },
      async get(userId, callId) {
        const raw = await redis.hget(k.pending(userId), callId);
        const call = raw ? (JSON.parse(raw) as PendingCall) : undefined;
        return call && call.expiresAtMs > Date.now() ? call : undefined;
      },
    },
    replicas: {
      async heartbeat(record, ttlMs) {
        // The index keeps the last beat and the node: once the record expires, who may clean up after it depends on where it ran.
        const seen = JSON.stringify({ at: Date.now(), ...(record.node === undefined ? {} : { node: record.node }) });
        await redis.multi().set(k.replica(record.replica), JSON.stringify(record), 'PX', ttlMs).hset(k.replicas, record.replica, seen).exec();
      },
      async live() {
        const ids = await redis.hkeys(k.replicas);
        if (ids.length === 0) return [];
        const raw = await redis.mget(ids.map(k.replica));
        return raw.flatMap((text, i) => (text === null ? [] : trusted(ids[i] ?? '', text)));
      },
      async isLive(replicaId) {
        return (await redis.exists(k.replica(replicaId))) === 1;
      },
      async dead() {
        const seen = Object.entries(await redis.hgetall(k.replicas)).map(([replica, value]) => ({ replica, ...parseSeen(value) }));
        if (seen.length === 0) return [];
        const raw = await redis.mget(seen.map((r) => k.replica(r.replica)));
        return seen.filter((_, i) => raw[i] === null);
      },
      async bury(replicaId) {
        await redis.hdel(k.replicas, replicaId);
      },
      async leave(replicaId) {
        await redis.multi().del(k.replica(replicaId)).hdel(k.replicas, replicaId).exec();
      },
    },
    healthy: () => redis.status === 'ready',
    async close() {
      limiter.close();
      sockets.close();
    },
  };
}
