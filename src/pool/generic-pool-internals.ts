import { createRequire } from 'node:module';
import genericPool from 'generic-pool';

/**
 * The places sandpool reaches past generic-pool's typed API. The version is
 * pinned exactly in package.json (3.9.0, the one these were read against);
 * assertGenericPoolInternals() checks them when a pool is created, so an
 * upgrade that drops one fails at start-up with the member's name instead of
 * as a TypeError inside a timer later.
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

interface PoolInternals {
  _ensureMinimum(): void;
  _evict(): void;
  _config: { min: number; max: number };
}

/** The installed generic-pool's version, for the error message. */
export function installedGenericPoolVersion(): string {
  try {
    return (createRequire(import.meta.url)('generic-pool/package.json') as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Throws unless `mod` (generic-pool's module object) still has every member
 * sandpool uses beyond the typed API. `version` only goes into the message.
 */
export function assertGenericPoolInternals(mod: unknown, version: string): asserts mod is GenericPoolModule {
  const missing = (member: string): never => {
    throw new Error(
      `generic-pool ${version} lacks ${member}, which sandpool's container pool relies on ` +
        '(written against generic-pool 3.9.0; see src/pool/generic-pool-internals.ts): pin generic-pool back to 3.9.0 or adapt that file',
    );
  };
  const m = (typeof mod === 'object' && mod !== null ? mod : {}) as Record<string, unknown>;
  const Pool = m.Pool;
  if (typeof Pool !== 'function') return missing('the exported Pool class');
  if (Pool.length !== 5) return missing('the Pool constructor taking (Evictor, Deque, PriorityQueue, factory, options)');
  if (typeof m.Deque !== 'function') return missing('the exported Deque class');
  if (typeof m.PriorityQueue !== 'function') return missing('the exported PriorityQueue class');
  const proto = (Pool as { prototype?: Record<string, unknown> }).prototype ?? {};
  for (const member of ['_ensureMinimum', '_evict'] as const) {
    if (typeof proto[member] !== 'function') missing(`Pool#${member}()`);
  }
}

/**
 * A generic-pool Pool with our own eviction rule. `createPool` hard-wires
 * DefaultEvictor, which removes idle resources by age only: sandpool must
 * also remove dead sandboxes (before they fail a borrow) and, with the pool
 * off, every idle one, so it passes its own evictor to the Pool constructor.
 */
export function createPoolWithEvictor<T>(factory: genericPool.Factory<T>, options: genericPool.Options, evict: EvictFn<T>): genericPool.Pool<T> {
  const mod: unknown = genericPool;
  assertGenericPoolInternals(mod, installedGenericPoolVersion());
  class Evictor {
    evict(config: EvictionConfig, resource: PooledResourceView<T>, available: number): boolean {
      return evict(config, resource, available);
    }
  }
  const pool = new mod.Pool<T>(Evictor, mod.Deque, mod.PriorityQueue, factory, options);
  const config = (pool as unknown as Partial<PoolInternals>)._config;
  if (typeof config?.min !== 'number' || typeof config.max !== 'number') {
    throw new Error(
      `generic-pool ${installedGenericPoolVersion()} lacks Pool#_config.min/max, which sandpool's container pool relies on ` +
        '(written against generic-pool 3.9.0; see src/pool/generic-pool-internals.ts): pin generic-pool back to 3.9.0 or adapt that file',
    );
  }
  return pool;
}

/**
 * generic-pool's `min` is fixed at construction: sandpool moves it with the
 * demand for spares (within 0..max), then refills up to it. A lower `min`
 * lets the evictor trim spares above it after their idle timeout.
 */
export function setMinimum<T>(pool: genericPool.Pool<T>, min: number): void {
  const internals = pool as unknown as PoolInternals;
  internals._config.min = Math.max(0, Math.min(internals._config.max, Math.floor(min)));
  internals._ensureMinimum();
}

/**
 * generic-pool refills to `min` only on start and after a destroy, so a create
 * that failed while nobody waited is never retried: sandpool calls this again
 * once the start backoff has elapsed.
 */
export function ensureMinimum<T>(pool: genericPool.Pool<T>): void {
  (pool as unknown as PoolInternals)._ensureMinimum();
}

/**
 * generic-pool evicts only on its timer: sandpool runs an eviction at once when
 * an idle sandbox dies or an on-demand one is left unwanted, instead of
 * keeping it until the next run (up to evictionIntervalMs).
 */
export function evictNow<T>(pool: genericPool.Pool<T>): void {
  (pool as unknown as PoolInternals)._evict();
}
