import path from 'node:path';
import type { Redis } from 'ioredis';
import type { Config } from '../config/config.js';
import { createFsWorkspaceStore } from './fs-store.js';
import { createRedisWorkspaceStore } from './redis-store.js';
import { createNoWorkspaceStore, type WorkspaceStore } from './workspace-store.js';

/**
 * Which Redis keeps the snapshots: none (WORKSPACE_STORE fs or none), the
 * shared state's own connection (REDIS_URL), or one of their own
 * (WORKSPACE_REDIS_URL, when it names another Redis).
 */
export function snapshotRedisOf(config: Pick<Config, 'workspace' | 'cluster'>): { kind: 'none' } | { kind: 'shared' } | { kind: 'own'; url: string } {
  const { workspace, cluster } = config;
  if (workspace.store !== 'redis') return { kind: 'none' };
  if (workspace.redisUrl !== undefined && workspace.redisUrl !== cluster.redisUrl) return { kind: 'own', url: workspace.redisUrl };
  return { kind: 'shared' };
}

/**
 * The snapshot store WORKSPACE_STORE names. A redis store without a Redis
 * connection is a wiring fault, not a reason to keep users' files somewhere
 * else: it fails start-up (the config rules already require a URL for it).
 */
export function createWorkspaceStore(settings: Config['workspace'], deps: { redis: Redis | undefined; prefix: string }): WorkspaceStore {
  const ttlMs = settings.ttlS * 1000;
  switch (settings.store) {
    case 'none':
      return createNoWorkspaceStore();
    case 'fs':
      return createFsWorkspaceStore({ dir: path.resolve(settings.dir), ttlMs });
    case 'redis':
      if (!deps.redis) throw new Error('WORKSPACE_STORE=redis, but no Redis connection was made for it (REDIS_URL or WORKSPACE_REDIS_URL)');
      return createRedisWorkspaceStore({ redis: deps.redis, prefix: deps.prefix, ttlMs });
  }
}
