import genericPool from 'generic-pool';

/**
 * The two places sandpool reaches past generic-pool's typed API (version
 * pinned exactly in package.json; test/pool.test.ts covers both):
 *
 * - A custom evictor, so dead idle sandboxes are removed on the eviction run
 *   instead of waiting to fail a borrow. `createPool` hard-wires
 *   DefaultEvictor; the exported Pool constructor takes the evictor.
 * - `_ensureMinimum()`: generic-pool refills to `min` only on start and after a
 *   destroy, so a create that failed while nobody waited is never retried. We
 *   call it again once the create backoff has elapsed.
 */

export interface PooledResourceView<T> {
  obj: T;
  lastIdleTime: number;
}

export interface EvictionConfig {
  softIdleTimeoutMillis: number;
  idleTimeoutMillis: number;
  min: number;
}

export type EvictFn<T> = (config: EvictionConfig, resource: PooledResourceView<T>, availableCount: number) => boolean;

type PoolCtor = new <T>(
  evictor: new () => { evict: EvictFn<T> },
  deque: unknown,
  priorityQueue: unknown,
  factory: genericPool.Factory<T>,
  options: genericPool.Options,
) => genericPool.Pool<T>;

interface GenericPoolModule {
  Pool: PoolCtor;
  Deque: unknown;
  PriorityQueue: unknown;
}

export function createPoolWithEvictor<T>(factory: genericPool.Factory<T>, options: genericPool.Options, evict: EvictFn<T>): genericPool.Pool<T> {
  const mod = genericPool as unknown as GenericPoolModule;
  class Evictor {
    evict(config: EvictionConfig, resource: PooledResourceView<T>, available: number): boolean {
      return evict(config, resource, available);
    }
  }
  return new mod.Pool<T>(Evictor, mod.Deque, mod.PriorityQueue, factory, options);
}

export function ensureMinimum(pool: genericPool.Pool<unknown>): void {
  (pool as unknown as { _ensureMinimum(): void })._ensureMinimum();
}

export function evictNow(pool: genericPool.Pool<unknown>): void {
  (pool as unknown as { _evict(): void })._evict();
}
