import { randomBytes } from 'node:crypto';
import { trimHistory, type ChatMessage } from '../model/conversation.js';
import { createMemoryEventBudget } from './event-budget.js';
import { createMemorySlotLimiter } from './slot-limiter.js';
import type { ReplicaRecord } from '../cluster/replica-record.js';
import type { PendingCall, SharedState } from './types.js';

/** Options of createMemoryState. */
export interface MemoryStateOptions {
  maxRequestsPerUser: number;
  maxSocketsPerUser: number;
  /** SOCKET_EVENTS_PER_SECOND. Default 20. */
  eventsPerSecond?: number;
  /** Conversation ids and histories are forgotten this long after their last use, as in Redis. Default 24 h. */
  historyTtlMs?: number;
}

/** Shared state for a single replica (no REDIS_URL): plain maps in this process. */
export function createMemoryState(options: MemoryStateOptions): SharedState {
  const historyTtlMs = options.historyTtlMs ?? 86_400_000;
  // Insertion order = last use (entries are re-inserted on use), so expiry scans stop at the first live one.
  const conversationIds = new Map<string, { id: string; expiresAt: number }>();
  const histories = new Map<string, { messages: ChatMessage[]; expiresAt: number }>();
  /** Drops expired entries: without it, every user id ever seen (any id, without AUTH_SECRET) would stay in memory. */
  const expire = (): void => {
    const now = Date.now();
    for (const map of [conversationIds, histories] as Array<Map<string, { expiresAt: number }>>) {
      for (const [userId, entry] of map) {
        if (entry.expiresAt > now) break;
        map.delete(userId);
      }
    }
    for (const [userId, o] of owners) if (o.expiresAt <= now) owners.delete(userId);
    for (const [userId, calls] of pending) {
      for (const [callId, c] of calls) if (c.expiresAtMs <= now) calls.delete(callId);
      if (calls.size === 0) pending.delete(userId);
    }
  };
  const sweepTimer = setInterval(expire, Math.min(60_000, Math.max(100, historyTtlMs / 2)));
  sweepTimer.unref();
  const fresh = <T extends { expiresAt: number }>(map: Map<string, T>, userId: string): T | undefined => {
    const entry = map.get(userId);
    if (entry && entry.expiresAt <= Date.now()) {
      map.delete(userId);
      return undefined;
    }
    return entry;
  };
  const keep = <T extends { expiresAt: number }>(map: Map<string, T>, userId: string, entry: T): void => {
    map.delete(userId);
    entry.expiresAt = Date.now() + historyTtlMs;
    map.set(userId, entry);
  };
  const owners = new Map<string, { replica: string; expiresAt: number }>();
  const replicas = new Map<string, { record: ReplicaRecord; expiresAt: number }>();
  /** Replicas that ever beat, with their last beat (until buried). */
  const announced = new Map<string, number>();
  const pending = new Map<string, Map<string, PendingCall>>();
  const livePending = (userId: string): PendingCall[] => [...(pending.get(userId)?.values() ?? [])].filter((c) => c.expiresAtMs > Date.now());
  const liveOwner = (userId: string): string | undefined => fresh(owners, userId)?.replica;
  return {
    kind: 'memory',
    limiter: createMemorySlotLimiter(options.maxRequestsPerUser),
    sockets: createMemorySlotLimiter(options.maxSocketsPerUser),
    events: createMemoryEventBudget({ eventsPerSecond: options.eventsPerSecond ?? 20 }),
    conversations: {
      async conversationId(userId) {
        const entry = fresh(conversationIds, userId) ?? { id: randomBytes(16).toString('base64url'), expiresAt: 0 };
        keep(conversationIds, userId, entry);
        return entry.id;
      },
      async history(userId) {
        return [...(fresh(histories, userId)?.messages ?? [])];
      },
      async append(userId, messages, maxMessages) {
        const previous = fresh(histories, userId)?.messages ?? [];
        keep(histories, userId, { messages: trimHistory([...previous, ...messages], maxMessages), expiresAt: 0 });
      },
    },
    owners: {
      async claim(userId, replicaId, ttlMs) {
        const current = liveOwner(userId);
        if (current && current !== replicaId) return current;
        owners.set(userId, { replica: replicaId, expiresAt: Date.now() + ttlMs });
        return replicaId;
      },
      async owner(userId) {
        return liveOwner(userId);
      },
      async release(userId, replicaId) {
        if (owners.get(userId)?.replica === replicaId) owners.delete(userId);
      },
      async renew(userIds, replicaId, ttlMs) {
        const lost: string[] = [];
        for (const u of userIds) {
          const current = liveOwner(u);
          if (current === undefined || current === replicaId) owners.set(u, { replica: replicaId, expiresAt: Date.now() + ttlMs });
          else lost.push(u);
        }
        return lost;
      },
    },
    pending: {
      async add(userId, call) {
        let mine = pending.get(userId);
        if (!mine) pending.set(userId, (mine = new Map()));
        mine.set(call.callId, call);
      },
      async remove(userId, callId) {
        const mine = pending.get(userId);
        mine?.delete(callId);
        if (mine?.size === 0) pending.delete(userId);
      },
      async list(userId) {
        return livePending(userId);
      },
      async get(userId, callId) {
        return livePending(userId).find((c) => c.callId === callId);
      },
    },
    replicas: {
      async heartbeat(record, ttlMs) {
        announced.set(record.replica, Date.now());
        replicas.set(record.replica, { record, expiresAt: Date.now() + ttlMs });
      },
      async live() {
        const now = Date.now();
        return [...replicas.values()].filter((r) => r.expiresAt > now).map((r) => r.record);
      },
      async isLive(replicaId) {
        return (replicas.get(replicaId)?.expiresAt ?? 0) > Date.now();
      },
      async dead() {
        const now = Date.now();
        return [...announced].filter(([id]) => (replicas.get(id)?.expiresAt ?? 0) <= now).map(([replica, lastSeenAtMs]) => {
          const node = replicas.get(replica)?.record.node;
          return { replica, lastSeenAtMs, ...(node === undefined ? {} : { node }) };
        });
      },
      async bury(replicaId) {
        announced.delete(replicaId);
        replicas.delete(replicaId);
      },
      async leave(replicaId) {
        announced.delete(replicaId);
        replicas.delete(replicaId);
      },
    },
    healthy: () => true,
    async close() {
      clearInterval(sweepTimer);
    },
  };
}
