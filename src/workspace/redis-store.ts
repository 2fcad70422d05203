import type { Redis } from 'ioredis';
import { decodeSnapshot, encodeSnapshot, type WorkspaceStore } from './workspace-store.js';

// Stores the snapshot unless the key holds a newer (or the same) version, in
// one step: two replicas saving at once cannot let the older one win.
const SAVE = `
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'snapshot', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

/**
 * Snapshots in Redis (binary-safe, the same encoding as the fs store), one
 * hash per user with its version beside it; kept for WORKSPACE_TTL_S after
 * the last save.
 */
export function createRedisWorkspaceStore(options: { redis: Redis; prefix: string; ttlMs: number }): WorkspaceStore {
  const { redis } = options;
  const key = (userId: string): string => `${options.prefix}workspace:${userId}`;
  return {
    kind: 'redis',
    async load(userId) {
      const bytes = await redis.hgetBuffer(key(userId), 'snapshot');
      return bytes === null ? undefined : decodeSnapshot(bytes);
    },
    async save(userId, snapshot) {
      const stored = await redis.eval(SAVE, 1, key(userId), String(snapshot.version), encodeSnapshot(snapshot), String(options.ttlMs));
      return stored === 1 ? 'stored' : 'stale';
    },
    async remove(userId) {
      await redis.del(key(userId));
    },
    async close() {
      /* the connection belongs to the replica */
    },
  };
}
