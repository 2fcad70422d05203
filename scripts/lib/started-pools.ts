import type { Config } from '../../src/config/config.js';
import type { Logger } from '../../src/logger.js';
import { createContainerPool, type ContainerPool, type ContainerPoolOptions } from '../../src/pool/container-pool.js';
import type { ContainerRuntime } from '../../src/runtime/types.js';

/**
 * The pools one run starts (a test file, a benchmark), drained together at
 * its end or on an interrupt: what tests and benchmarks shared as a local
 * `makePool` each.
 */
export interface StartedPools {
  /** Creates the pool, starts warming it, and keeps it for drainAll. */
  start(options: ContainerPoolOptions): ContainerPool;
  /** A replica's pool as its config describes it (pool and sandbox settings, replica id), with `extra` on top. */
  fromConfig(cfg: Config, runtime: ContainerRuntime, logger: Logger, extra?: Partial<ContainerPoolOptions>): ContainerPool;
  /** Drains every pool started, each within `timeoutMs`. */
  drainAll(timeoutMs: number): Promise<void>;
}

export function startedPools(): StartedPools {
  const pools: ContainerPool[] = [];
  const started: StartedPools = {
    start(options) {
      const pool = createContainerPool(options);
      pools.push(pool);
      pool.start();
      return pool;
    },
    fromConfig: (cfg, runtime, logger, extra = {}) =>
      started.start({ runtime, pool: cfg.pool, sandbox: cfg.sandbox, replicaId: cfg.server.replicaId, logger, ...extra }),
    async drainAll(timeoutMs) {
      await Promise.allSettled(pools.splice(0).map((p) => p.drain(timeoutMs)));
    },
  };
  return started;
}
