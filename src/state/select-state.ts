import type { Redis } from 'ioredis';
import type { Config } from '../config/config.js';
import type { Logger } from '../logger.js';
import { createMemoryState } from './memory-state.js';
import { createRedisState } from './redis-state.js';
import type { SharedState } from './types.js';

/** The shared state the config selects: in Redis when REDIS_URL gave a connection (several replicas), else in this process (one). */
export function createSharedState(config: Pick<Config, 'chat' | 'auth' | 'cluster'>, deps: { redis: Redis | undefined; logger: Logger }): SharedState {
  const limits = {
    maxRequestsPerUser: config.chat.maxRequestsPerUser,
    maxSocketsPerUser: config.auth.maxSocketsPerUser,
    eventsPerSecond: config.chat.socketEventsPerSecond,
  };
  if (!deps.redis) return createMemoryState(limits);
  return createRedisState({ ...limits, redis: deps.redis, prefix: config.cluster.redisKeyPrefix, slotTtlMs: config.cluster.requestSlotTtlMs, logger: deps.logger });
}
