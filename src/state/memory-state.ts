import { randomBytes } from 'node:crypto';
import type { ChatMessage } from '../agent/types.js';
import { createMemoryRequestLimiter } from './request-limiter.js';
import { trimHistory, type PendingCall, type ReplicaRecord, type SharedState } from './types.js';

/** Shared state for a single replica (no REDIS_URL): plain maps in this process. */
export function createMemoryState(options: { maxRequestsPerUser: number }): SharedState {
  const sessions = new Map<string, string>();
  const histories = new Map<string, ChatMessage[]>();
  const owners = new Map<string, { replica: string; expiresAt: number }>();
  const replicas = new Map<string, { record: ReplicaRecord; expiresAt: number }>();
  const announced = new Set<string>();
  const pending = new Map<string, Map<string, PendingCall>>();
  const livePending = (userId: string): PendingCall[] => [...(pending.get(userId)?.values() ?? [])].filter((c) => c.expiresAtMs > Date.now());
  const liveOwner = (userId: string): string | undefined => {
    const o = owners.get(userId);
    if (!o) return undefined;
    if (o.expiresAt <= Date.now()) {
      owners.delete(userId);
      return undefined;
    }
    return o.replica;
  };
  return {
    kind: 'memory',
    limiter: createMemoryRequestLimiter(options.maxRequestsPerUser),
    conversations: {
      async sessionId(userId) {
        let id = sessions.get(userId);
        if (!id) sessions.set(userId, (id = randomBytes(16).toString('base64url')));
        return id;
      },
      async history(userId) {
        return [...(histories.get(userId) ?? [])];
      },
      async append(userId, messages, maxMessages) {
        histories.set(userId, trimHistory([...(histories.get(userId) ?? []), ...messages], maxMessages));
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
        for (const u of userIds) if (owners.get(u)?.replica === replicaId) owners.set(u, { replica: replicaId, expiresAt: Date.now() + ttlMs });
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
        announced.add(record.replica);
        replicas.set(record.replica, { record, expiresAt: Date.now() + ttlMs });
      },
      async live() {
        const now = Date.now();
        return [...replicas.values()].filter((r) => r.expiresAt > now).map((r) => r.record);
      },
      async dead() {
        const now = Date.now();
        return [...announced].filter((id) => (replicas.get(id)?.expiresAt ?? 0) <= now);
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
      /* nothing to release */
    },
  };
}
