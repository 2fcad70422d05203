import { randomBytes, randomUUID } from 'node:crypto';
import os from 'node:os';
import type genericPool from 'generic-pool';
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { PoolSettings, SandboxLimits } from './settings.js';
import { SandpoolError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { startSandbox, type Sandbox } from '../mcp/sandbox.js';
import { APP_LABEL_VALUE, LABELS, type ContainerRuntime, type SandboxSpec } from '../runtime/types.js';
import { LatencyWindow, sleep, withTimeout } from '../util/async.js';
import { Backoff, Capacity } from './capacity.js';
import { createPoolWithEvictor, ensureMinimum, evictNow } from './generic-pool-internals.js';

/** One user's exclusive hold on a sandbox. Released = the sandbox is destroyed. */
export interface Lease {
  readonly id: string;
  readonly sandbox: Sandbox;
  readonly acquiredAtMs: number;
  /** How long acquire() took, in ms. */
  readonly acquireMs: number;
  callTool(name: string, args: Record<string, unknown>, options?: { timeoutMs?: number }): Promise<CallToolResult>;
  /** Destroys the sandbox (a used workspace is never handed to anyone else). Idempotent. */
  release(): Promise<void>;
}

/** The seed's stats shape (idle, active, total, maxPoolSize, minPoolSize) plus sandpool's extras. */
export interface PoolStats {
  idle: number;
  active: number;
  total: number;
  maxPoolSize: number;
  minPoolSize: number;
  /** acquire() calls waiting for a sandbox. */
  pending: number;
  /** Sandboxes starting right now. */
  creating: number;
  enabled: boolean;
  runtime: 'docker' | 'process';
  isolated: boolean;
  ready: boolean;
  draining: boolean;
  created: number;
  destroyed: number;
  failed: number;
  acquired: number;
  consecutiveFailures: number;
  lastError: string | null;
  acquireLatencyMs: { p50: number | null; p95: number | null; p99: number | null };
  createLatencyMs: { p50: number | null; p95: number | null; p99: number | null };
}

/** Hooks for metrics; all optional. */
export interface PoolObserver {
  acquired?(ms: number): void;
  created?(ms: number): void;
  createFailed?(err: Error): void;
  destroyed?(): void;
}

export interface ContainerPool {
  /** Starts warming POOL_MIN_SIZE sandboxes in the background. */
  start(): void;
  /** Resolves true once minSize sandboxes are idle (or false after timeoutMs). */
  whenWarm(timeoutMs: number): Promise<boolean>;
  /** A ready sandbox, in ms when one is warm. Rejects with POOL_EXHAUSTED, SANDBOX_FAILED or SHUTTING_DOWN. */
  acquire(): Promise<Lease>;
  stats(): PoolStats;
  /** tools/list of this pool's image, known once one sandbox has started. */
  tools(): readonly Tool[] | undefined;
  /** Ids of every sandbox this pool currently owns (idle, leased, starting). */
  ownedIds(): ReadonlySet<string>;
  /** Destroys every sandbox, leased ones included, within timeoutMs. */
  drain(timeoutMs: number): Promise<void>;
}

/** Options of createContainerPool. */
export interface ContainerPoolOptions {
  runtime: ContainerRuntime;
  pool: PoolSettings;
  sandbox: SandboxLimits;
  replicaId: string;
  logger: Logger;
  /** Pool name in the `sandpool.pool` label. Default "default". */
  name?: string;
  observer?: PoolObserver;
  /** How often idle sandboxes are checked for death and idle timeout. Default min(5000, idleTimeoutMs). */
  evictionIntervalMs?: number;
  /** First retry delay after a failed start; doubles up to backoffMaxMs. Default 250. */
  backoffBaseMs?: number;
  /** Default 30000. */
  backoffMaxMs?: number;
  /**
   * Consecutive failed starts after which the failure counts as persistent (a
   * broken image, a dead engine): every waiting acquire then fails with
   * SANDBOX_FAILED, and new ones fail at once while the backoff runs. Below it,
   * each failure fails only the oldest waiter, so one transient failure (a start
   * timeout under load) costs one request, not a whole burst. Default 3.
   */
  persistentFailureThreshold?: number;
}

/** `<hostname>/<pid>`: identifies the owning process for the orphan sweep. */
export function ownerLabel(): string {
  return `${os.hostname()}/${process.pid}`;
}

/** Bound on destroying one sandbox outside of drain (drain uses what is left of its deadline). */
const DESTROY_TIMEOUT_MS = 15_000;

export function createContainerPool(options: ContainerPoolOptions): ContainerPool {
  const { runtime, replicaId, observer } = options;
  const cfg = options.pool;
  const log = options.logger.child({ component: 'ContainerPool' });
  const poolName = options.name ?? 'default';
  const minIdle = cfg.enabled ? cfg.minSize : 0;
  const capacity = new Capacity(cfg.maxSize);
  // Starts queue here (FIFO) so the first ones finish early instead of all finishing late.
  const starting = new Capacity(cfg.createConcurrency);
  const backoff = new Backoff(options.backoffBaseMs ?? 250, options.backoffMaxMs ?? 30_000);
  const persistentAfter = Math.max(1, options.persistentFailureThreshold ?? 3);
  const shutdown = new AbortController();
  const owned = new Map<string, Sandbox>();
  const leased = new Set<Sandbox>();
  /** Sandboxes being destroyed by us, with the destroy in progress. */
  const retiring = new Map<string, Promise<void>>();
  const leases = new Set<Lease>();
  /**
   * acquire() calls waiting right now, oldest first (a Set keeps insertion
   * order): told about create failures and shutdown. A listener returns true
   * when it failed its acquire.
   */
  const waiterListeners = new Set<(err: Error) => boolean>();
  const acquireLatency = new LatencyWindow();
  const createLatency = new LatencyWindow();
  let creating = 0;
  let waiting = 0;
  const counters = { created: 0, destroyed: 0, failed: 0, acquired: 0 };
  let lastError: string | null = null;
  let toolCatalog: readonly Tool[] | undefined;
  let warmedOnce = minIdle === 0;
  let draining = false;
  /** Set by drain(): every destroy from then on must finish by it. */
  let drainDeadline: number | undefined;
  let refillTimer: NodeJS.Timeout | undefined;
  let seq = 0;
  const warmWaiters = new Set<() => void>();

  const limits = options.sandbox;
  const [uid = '1000', gid = uid] = limits.user.split(':');
  const user = `${uid}:${gid}`;
  const owner = ownerLabel();

  function spec(): SandboxSpec {
    seq++;
    return {
      image: cfg.image,
      command: cfg.command,
      name: `sandpool-${replicaId}-${seq}-${randomBytes(3).toString('hex')}`,
      labels: {
        [LABELS.app]: APP_LABEL_VALUE,
        [LABELS.replica]: replicaId,
        [LABELS.pool]: poolName,
        [LABELS.created]: String(Date.now()),
        [LABELS.owner]: owner,
      },
      user,
      memoryBytes: limits.memoryMb * 1024 * 1024,
      nanoCpus: Math.round(limits.cpus * 1e9),
      pidsLimit: limits.pidsLimit,
      workspaceBytes: limits.workspaceMb * 1024 * 1024,
      tmpBytes: limits.tmpMb * 1024 * 1024,
    };
  }

  /** A destroy's bound: fixed, or during drain whatever is left of its deadline. */
  function destroyTimeoutMs(): number {
    return drainDeadline === undefined ? DESTROY_TIMEOUT_MS : Math.max(1, Math.min(DESTROY_TIMEOUT_MS, drainDeadline - Date.now()));
  }

  function destroySandbox(sb: Sandbox): Promise<void> {
    // Concurrent callers (lease release, drain) share one destroy.
    const inFlight = retiring.get(sb.id);
    if (inFlight) return inFlight;
    if (!owned.has(sb.id)) return Promise.resolve();
    const done = (async () => {
      try {
        await withTimeout(sb.destroy(), destroyTimeoutMs(), `destroy sandbox ${sb.id.slice(0, 12)}`);
      } catch (err) {
        // The orphan sweep removes it later by label; the slot must not leak either way.
        log.warn({ sandbox: sb.id.slice(0, 12), err: errorMessage(err) }, 'could not destroy sandbox');
      } finally {
        retiring.delete(sb.id);
        if (owned.delete(sb.id)) {
          counters.destroyed++;
          observer?.destroyed?.();
          capacity.release();
        }
      }
    })();
    // Its exit is expected from here on: not a death to report.
    retiring.set(sb.id, done);
    return done;
  }

  function scheduleRefill(): void {
    if (draining || refillTimer || minIdle === 0) return;
    refillTimer = setTimeout(() => {
      refillTimer = undefined;
      if (!draining) ensureMinimum(gp as genericPool.Pool<unknown>);
    }, backoff.remainingMs() + 10);
    refillTimer.unref();
  }

  /** Several starts in a row failed: a broken image or a dead engine, not a blip. */
  function failingPersistently(): boolean {
    return backoff.consecutiveFailures >= persistentAfter;
  }

  /**
   * A failed start fails the oldest waiter only; once failures look persistent
   * it fails every waiter. Either way nobody waits for the acquire timeout
   * against an engine that cannot start anything.
   */
  function failWaiters(error: Error): void {
    const all = failingPersistently();
    for (const listener of waiterListeners) {
      if (listener(error) && !all) return;
    }
  }

  /**
   * With the pool off a sandbox is made for one acquire; if that acquire is gone
   * (it timed out, or failed fast) by the time the start finishes, nobody else
   * wants it idle: remove it instead of keeping it for POOL_IDLE_TIMEOUT_MS.
   */
  function dropUnwanted(): void {
    if (cfg.enabled || draining) return;
    if (gp.available > 0 && gp.pending === 0) evictNow(gp as genericPool.Pool<unknown>);
  }

  function checkWarm(): void {
    if (!warmedOnce && gp.available >= minIdle) {
      warmedOnce = true;
      log.info(`[ContainerPool] Initialized with ${gp.available} idle containers`);
    }
    if (gp.available >= minIdle) {
      for (const w of warmWaiters) w();
      warmWaiters.clear();
    }
  }

  const factory: genericPool.Factory<Sandbox> = {
    async create() {
      try {
        await capacity.acquire();
      } catch (err) {
        // Only when draining. Pause before rejecting: generic-pool re-dispatches
        // a rejected create at once while any acquire still waits.
        await sleep(200);
        throw err;
      }
      let counted = false;
      try {
        // Back off inside create: generic-pool re-dispatches a failed create at
        // once while clients wait, which is a busy loop against a broken engine.
        const wait = backoff.remainingMs();
        if (wait > 0) await sleep(wait, shutdown.signal);
        if (draining) {
          await sleep(200);
          throw new SandpoolError('SHUTTING_DOWN', 'the sandbox pool is shutting down');
        }
        creating++;
        counted = true;
        await starting.acquire();
        let sandbox: Sandbox;
        const started = Date.now();
        try {
          sandbox = await withTimeout(
            startSandbox(runtime, spec(), { logger: options.logger, initTimeoutMs: cfg.createTimeoutMs }),
            cfg.createTimeoutMs,
            'sandbox start',
            (late) => void late.destroy().catch(() => undefined),
          );
        } finally {
          starting.release();
        }
        if (draining) {
          // Finished during drain: nobody may get it, and drain may have swept already.
          await withTimeout(sandbox.destroy(), destroyTimeoutMs(), 'destroy sandbox').catch(() => undefined);
          throw new SandpoolError('SHUTTING_DOWN', 'the sandbox pool is shutting down');
        }
        const ms = Date.now() - started;
        createLatency.record(ms);
        counters.created++;
        observer?.created?.(ms);
        backoff.success();
        lastError = null;
        owned.set(sandbox.id, sandbox);
        toolCatalog ??= sandbox.tools;
        void sandbox.process.exited.then((info) => {
          if (!owned.has(sandbox.id) || retiring.has(sandbox.id) || draining) return;
          if (leased.has(sandbox)) log.warn({ sandbox: sandbox.id.slice(0, 12), reason: info.reason }, 'leased sandbox died');
          else {
            log.warn({ sandbox: sandbox.id.slice(0, 12), reason: info.reason }, 'idle sandbox died; evicting');
            evictNow(gp as genericPool.Pool<unknown>);
          }
        });
        // After generic-pool has dispatched it (microtasks): is it idle, and wanted?
        setImmediate(() => {
          checkWarm();
          dropUnwanted();
        });
        return sandbox;
      } catch (err) {
        capacity.release();
        const error = err instanceof Error ? err : new Error(String(err));
        if (!draining) {
          counters.failed++;
          backoff.failure();
          lastError = error.message;
          log.error({ err: error.message, retryInMs: backoff.remainingMs() }, 'sandbox start failed');
          observer?.createFailed?.(error);
          failWaiters(error);
          scheduleRefill();
        }
        throw error;
      } finally {
        if (counted) creating--;
      }
    },
    async destroy(sb) {
      // A leased sandbox was detached from generic-pool on acquire; its lease destroys it.
      if (leased.has(sb)) return;
      await destroySandbox(sb);
    },
    async validate(sb) {
      return sb.isHealthy();
    },
  };

  const gp = createPoolWithEvictor<Sandbox>(
    factory,
    {
      min: minIdle,
      max: cfg.maxSize,
      autostart: false,
      testOnBorrow: true,
      // Every acquire (including ones we gave up on) is bounded.
      acquireTimeoutMillis: cfg.acquireTimeoutMs,
      // sandpool enforces maxWaitingClients itself: abandoned acquires must not count.
      evictionRunIntervalMillis: options.evictionIntervalMs ?? Math.min(5_000, cfg.idleTimeoutMs),
      numTestsPerEvictionRun: cfg.maxSize,
      softIdleTimeoutMillis: cfg.idleTimeoutMs,
      idleTimeoutMillis: Number.MAX_SAFE_INTEGER,
      fifo: true,
    },
    (config, resource, available) => {
      if (!resource.obj.isUsable()) return true;
      // On demand, an idle sandbox is one nobody waited for (see dropUnwanted).
      if (!cfg.enabled) return true;
      // Trim idle sandboxes above the minimum once they sat idle long enough.
      // generic-pool 3.9.0 re-reads `available` for every resource of a run
      // (Pool#_evict), so one run cannot trim below min.
      return Date.now() - resource.lastIdleTime > config.softIdleTimeoutMillis && available > config.min;
    },
  );
  gp.on('factoryDestroyError', (err: unknown) => log.warn({ err: errorMessage(err) }, 'destroy failed'));

  function makeLease(sb: Sandbox, acquireMs: number): Lease {
    let released = false;
    const lease: Lease = {
      id: randomUUID(),
      sandbox: sb,
      acquiredAtMs: Date.now(),
      acquireMs,
      callTool: (name, args, callOptions) => {
        if (released) return Promise.reject(new SandpoolError('SANDBOX_FAILED', 'this sandbox lease was already released'));
        return sb.callTool(name, args, callOptions);
      },
      async release() {
        if (released) return;
        released = true;
        leases.delete(lease);
        await destroySandbox(sb);
        leased.delete(sb);
      },
    };
    leases.add(lease);
    return lease;
  }

  function isReady(): boolean {
    if (draining) return false;
    if (!warmedOnce) return false;
    if (backoff.consecutiveFailures === 0 || gp.available > 0) return true;
    // Failing to start sandboxes with none in stock. With warm spares wanted,
    // the background refill keeps probing until a start succeeds; without
    // (pool off, or min 0) nothing probes before the next acquire, so only the
    // backoff window may count, or one failed start would mean 503 forever.
    return minIdle === 0 && backoff.remainingMs() === 0;
  }

  return {
    start() {
      log.info(`[ContainerPool] Initializing with min=${cfg.minSize}, max=${cfg.maxSize} (${cfg.enabled ? 'pooled' : 'on demand'}, runtime=${runtime.kind})`);
      if (!runtime.isolated) log.warn('[ContainerPool] sandboxes run as plain processes: NOT ISOLATED from this host (no Docker engine)');
      if (minIdle > 0) log.info(`[ContainerPool] Warming up ${minIdle} containers...`);
      gp.start();
    },

    whenWarm(timeoutMs) {
      if (gp.available >= minIdle) return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          resolve(true);
        };
        const timer = setTimeout(() => {
          warmWaiters.delete(done);
          resolve(false);
        }, timeoutMs);
        warmWaiters.add(done);
      });
    },

    async acquire() {
      if (draining) throw new SandpoolError('SHUTTING_DOWN', 'this replica is shutting down');
      if (waiting >= cfg.maxWaitingClients) {
        throw new SandpoolError('POOL_EXHAUSTED', `too many requests are waiting for a sandbox (${waiting}); try again shortly`);
      }
      // Only while the backoff runs: the first acquire after it is the probe
      // that finds out whether starts work again (with the pool off nothing
      // else would ever retry).
      if (gp.available === 0 && failingPersistently() && backoff.remainingMs() > 0) {
        throw new SandpoolError(
          'SANDBOX_FAILED',
          `sandboxes are failing to start (${lastError ?? 'unknown error'}); next attempt in ${backoff.remainingMs()} ms`,
        );
      }
      const started = performance.now();
      waiting++;
      const borrow = gp.acquire();
      let onFailure: ((err: Error) => boolean) | undefined;
      const failFast = new Promise<never>((_, reject) => {
        let failed = false;
        onFailure = (err) => {
          // Already failed (its clean-up runs a microtask later): not a waiter any more.
          if (failed) return false;
          if (err instanceof SandpoolError && err.code === 'SHUTTING_DOWN') {
            failed = true;
            reject(err);
            return true;
          }
          if (gp.available > 0) return false;
          failed = true;
          reject(new SandpoolError('SANDBOX_FAILED', `could not start a sandbox: ${err.message}`, { cause: err }));
          return true;
        };
        waiterListeners.add(onFailure);
      });
      let sb: Sandbox;
      try {
        sb = await Promise.race([borrow, failFast]);
      } catch (err) {
        // If generic-pool hands us a sandbox after we gave up, it goes back
        // unused: to the next waiter, or (pool off, nobody waiting) away.
        borrow.then(
          (late) => {
            gp.release(late).then(
              () => setImmediate(dropUnwanted),
              () => undefined,
            );
          },
          () => undefined,
        );
        if (err instanceof SandpoolError) throw err;
        if (err instanceof Error && err.name === 'TimeoutError') {
          throw new SandpoolError(
            'POOL_EXHAUSTED',
            `no sandbox became free within ${cfg.acquireTimeoutMs} ms (${leases.size} in use, ${creating} starting, max ${cfg.maxSize})`,
          );
        }
        throw new SandpoolError('SANDBOX_FAILED', `could not acquire a sandbox: ${errorMessage(err)}`, { cause: err });
      } finally {
        waiting--;
        if (onFailure) waiterListeners.delete(onFailure);
      }
      // Detach the sandbox from generic-pool: its `min` then counts idle spares
      // (a leased sandbox is replaced at once), while Capacity bounds the total.
      leased.add(sb);
      await gp.destroy(sb);
      const ms = performance.now() - started;
      acquireLatency.record(ms);
      counters.acquired++;
      observer?.acquired?.(ms);
      return makeLease(sb, ms);
    },

    stats() {
      // Counted from sandpool's own books: generic-pool's `available` is stale after clear().
      const idle = [...owned.values()].filter((sb) => !leased.has(sb)).length;
      return {
        idle,
        active: leases.size,
        total: idle + leases.size + creating,
        maxPoolSize: cfg.maxSize,
        minPoolSize: cfg.minSize,
        pending: waiting,
        creating,
        enabled: cfg.enabled,
        runtime: runtime.kind,
        isolated: runtime.isolated,
        ready: isReady(),
        draining,
        ...counters,
        consecutiveFailures: backoff.consecutiveFailures,
        lastError,
        acquireLatencyMs: acquireLatency.percentiles(),
        createLatencyMs: createLatency.percentiles(),
      };
    },

    tools() {
      return toolCatalog;
    },

    ownedIds() {
      return new Set(owned.keys());
    },

    async drain(timeoutMs) {
      if (draining) return;
      const deadline = Date.now() + timeoutMs;
      drainDeadline = deadline;
      const left = (): number => Math.max(1, deadline - Date.now());
      draining = true;
      clearTimeout(refillTimer);
      shutdown.abort();
      capacity.close();
      starting.close();
      const stopping = new SandpoolError('SHUTTING_DOWN', 'this replica is shutting down');
      for (const listener of waiterListeners) listener(stopping);
      log.info({ idle: gp.available, active: leases.size }, '[ContainerPool] draining');
      // Only generic-pool's draining flag matters (no more refills). Its drain()
      // also waits for acquire requests we already failed, which stay queued
      // until the acquire timeout: awaiting it would spend the whole budget.
      void gp.drain().catch(() => undefined);
      const warn = (err: unknown): void => log.warn({ err: errorMessage(err) }, 'pool drain incomplete');
      // clear() waits for starts in flight (they destroy what they make), then destroys the idle ones.
      await withTimeout(Promise.allSettled([gp.clear(), ...[...leases].map((l) => l.release())]), left(), 'pool drain').catch(warn);
      // Anything still owned (a start that finished during drain) goes too.
      await withTimeout(Promise.allSettled([...owned.values()].map((sb) => destroySandbox(sb))), left(), 'pool drain').catch(warn);
      log.info({ destroyed: counters.destroyed }, '[ContainerPool] drained');
    },
  };
}
