import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PoolObserver, PoolStats } from '../pool/container-pool.js';

/** One prom-client registry per app instance (no global default registry). */
export interface Metrics {
  registry: Registry;
  poolObserver: PoolObserver;
  orphansRemoved: Counter;
}

export function createMetrics(options: { replicaId: string; poolStats: () => PoolStats }): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ replica: options.replicaId });
  collectDefaultMetrics({ register: registry, prefix: 'sandpool_' });

  const gauge = (name: string, help: string, pick: (s: PoolStats) => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(pick(options.poolStats()));
      },
    });
  };
  gauge('sandpool_pool_idle', 'Warm sandboxes ready to hand out', (s) => s.idle);
  gauge('sandpool_pool_active', 'Sandboxes leased to users', (s) => s.active);
  gauge('sandpool_pool_total', 'All sandboxes of this replica (idle + active + starting)', (s) => s.total);
  gauge('sandpool_pool_creating', 'Sandboxes starting right now', (s) => s.creating);
  gauge('sandpool_pool_pending', 'acquire() calls waiting for a sandbox', (s) => s.pending);
  gauge('sandpool_pool_max', 'POOL_MAX_SIZE', (s) => s.maxPoolSize);
  gauge('sandpool_pool_min', 'POOL_MIN_SIZE', (s) => s.minPoolSize);
  gauge('sandpool_pool_ready', '1 when the pool can serve a new user', (s) => (s.ready ? 1 : 0));

  const acquireSeconds = new Histogram({
    name: 'sandpool_pool_acquire_seconds',
    help: 'Time for acquire() to hand out a ready sandbox',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const createSeconds = new Histogram({
    name: 'sandpool_pool_create_seconds',
    help: 'Time to start one sandbox (create + start + MCP initialize + tools/list)',
    buckets: [0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32],
    registers: [registry],
  });
  const createFailures = new Counter({
    name: 'sandpool_pool_create_failures_total',
    help: 'Sandbox starts that failed',
    registers: [registry],
  });
  const destroyed = new Counter({ name: 'sandpool_pool_destroyed_total', help: 'Sandboxes destroyed', registers: [registry] });
  const orphansRemoved = new Counter({
    name: 'sandpool_orphans_removed_total',
    help: 'Containers removed by the orphan sweep',
    registers: [registry],
  });

  return {
    registry,
    orphansRemoved,
    poolObserver: {
      acquired: (ms) => acquireSeconds.observe(ms / 1000),
      created: (ms) => createSeconds.observe(ms / 1000),
      createFailed: () => createFailures.inc(),
      destroyed: () => destroyed.inc(),
    },
  };
}
