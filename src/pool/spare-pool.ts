import type genericPool from 'generic-pool';
import { SandpoolError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Sandbox } from '../mcp/sandbox.js';
import { sleep } from '../util/async.js';
import { createPoolWithEvictor, ensureMinimum, evictNow, setMinimum } from './generic-pool-internals.js';
import type { LeaseBook } from './lease-book.js';
import type { PoolSettings } from './settings.js';
import type { StartScheduler } from './start-scheduler.js';

/**
 * How long a create refused during drain waits before rejecting: generic-pool
 * re-dispatches a rejected create at once while any acquire still waits, and
 * the acquires it abandoned wait until their acquire timeout.
 */
const REFUSED_CREATE_PAUSE_MS = 200;

/** Options of createSparePool. */
export interface SparePoolOptions {
  settings: Pick<PoolSettings, 'enabled' | 'minSize' | 'maxSize' | 'acquireTimeoutMs' | 'idleTimeoutMs' | 'refillDelayMs'>;
  /** How often idle sandboxes are checked for death and idle timeout. */
  evictionIntervalMs: number;
  starts: StartScheduler;
  book: LeaseBook;
  log: Logger;
}

/**
 * The warm spares, kept by generic-pool: idle sandboxes up to the target
 * (at least `min`, more when demand asks: setTarget), refilled after a lease
 * and after the start backoff, trimmed above the target after the idle
 * timeout, evicted when dead; with the pool off, none kept at all. A sandbox
 * handed out leaves generic-pool for good, so the target counts idle (and
 * starting) spares only and a leased one is replaced: after refillDelayMs
 * while other spares are idle (a start is a burst of CPU for the engine and
 * the new sandbox; the user just handed one is making their first calls), at
 * once when none is left or an acquire waits.
 */
export interface SparePool {
  /** Starts warming `min` spares. */
  start(): void;
  /** Spares idle in generic-pool right now. */
  available(): number;
  /** Whether `min` spares were idle at least once (always, with none wanted). */
  warmedOnce(): boolean;
  /** Whether the pool keeps spares at all (pool on and min > 0). */
  keepsSpares(): boolean;
  /** Spares (idle or starting) to keep from now on; never below `min`, ignored with the pool off. */
  setTarget(spares: number): void;
  /** The spares kept right now. */
  target(): number;
  /** Resolves true once `min` spares are idle, false after timeoutMs. */
  whenWarm(timeoutMs: number): Promise<boolean>;
  /**
   * A spare (checked locally: no engine call) or a new sandbox, detached from
   * generic-pool. Rejects with generic-pool's TimeoutError after the acquire
   * timeout, or with what the start scheduler failed this waiter with.
   */
  take(): Promise<Sandbox>;
  /** Removes dead idle sandboxes now rather than at the next eviction run. */
  evictDead(): void;
  /** No more refills or creates; resolves once starts in flight settled and idle spares are destroyed. */
  drain(): Promise<void>;
}

export function createSparePool(options: SparePoolOptions): SparePool {
  const { settings: cfg, starts, book, log } = options;
  const minIdle = cfg.enabled ? cfg.minSize : 0;
  /** Taken by a caller: generic-pool's destroy of it only detaches it; its lease destroys it. */
  const handedOut = new WeakSet<Sandbox>();
  const warmWaiters = new Set<() => void>();
  let warm = minIdle === 0;
  let target = minIdle;
  let closed = false;
  let refillTimer: NodeJS.Timeout | undefined;
  /** Refills waiting out refillDelayMs; called to start them now. */
  const deferredRefills = new Set<() => void>();

  function startDeferredRefills(): void {
    for (const go of [...deferredRefills]) go();
  }

  /** Resolves when a refill may start: at once, or after refillDelayMs while other spares are idle and nobody waits. */
  function refillTurn(): Promise<void> {
    // The first fill, and a refill with no spare left or an acquire waiting, is what users wait for.
    if (cfg.refillDelayMs <= 0 || !warm || closed || gp.available === 0 || gp.pending > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const go = (): void => {
        clearTimeout(timer);
        deferredRefills.delete(go);
        resolve();
      };
      const timer = setTimeout(go, cfg.refillDelayMs);
      deferredRefills.add(go);
    });
  }

  function scheduleRefill(): void {
    if (closed || refillTimer || target === 0) return;
    refillTimer = setTimeout(() => {
      refillTimer = undefined;
      if (!closed) ensureMinimum(gp);
    }, starts.backoffRemainingMs() + 10);
    refillTimer.unref();
  }

  /**
   * With the pool off a sandbox is made for one acquire; if that acquire is gone
   * (it timed out, or failed fast) by the time the start finishes, nobody else
   * wants it idle: remove it instead of keeping it for the idle timeout.
   */
  function dropUnwanted(): void {
    if (cfg.enabled || closed) return;
    if (gp.available > 0 && gp.pending === 0) evictNow(gp);
  }

  function checkWarm(): void {
    if (gp.available < minIdle) return;
    if (!warm) {
      warm = true;
      log.info(`[ContainerPool] Initialized with ${gp.available} idle containers`);
    }
    for (const w of warmWaiters) w();
    warmWaiters.clear();
  }

  const factory: genericPool.Factory<Sandbox> = {
    async create() {
      await refillTurn();
      try {
        // Waits for a free slot rather than failing: generic-pool must never see a create rejected just because the replica is full.
        await book.reserve();
      } catch (err) {
        // Only once drain closed the book.
        await sleep(REFUSED_CREATE_PAUSE_MS);
        throw err;
      }
      let sandbox: Sandbox;
      try {
        sandbox = await starts.start();
      } catch (err) {
        book.unreserve();
        if (closed) await sleep(REFUSED_CREATE_PAUSE_MS);
        else scheduleRefill();
        throw err;
      }
      book.adopt(sandbox);
      if (closed) {
        // Finished during drain: nobody may get it, and drain may have swept already.
        await book.destroy(sandbox);
        throw new SandpoolError('SHUTTING_DOWN', 'the sandbox pool is shutting down');
      }
      // After generic-pool has dispatched it (microtasks): is it idle, and wanted?
      setImmediate(() => {
        checkWarm();
        dropUnwanted();
      });
      return sandbox;
    },
    async destroy(sb) {
      if (handedOut.has(sb)) return;
      await book.destroy(sb);
    },
    // Local only: the attached stream and the engine's event stream say when a sandbox died; a hand-out asks the engine nothing.
    async validate(sb) {
      return sb.isUsable();
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
      // No maxWaitingClients: sandpool enforces it itself, because acquires it abandoned must not count.
      evictionRunIntervalMillis: options.evictionIntervalMs,
      numTestsPerEvictionRun: cfg.maxSize,
      softIdleTimeoutMillis: cfg.idleTimeoutMs,
      idleTimeoutMillis: Number.MAX_SAFE_INTEGER,
      fifo: true,
    },
    (config, resource, available) => {
      if (!resource.obj.isUsable()) return true;
      // On demand, an idle sandbox is one nobody waited for (see dropUnwanted).
      if (!cfg.enabled) return true;
      // generic-pool 3.9.0 re-reads `available` for every resource of a run
      // (Pool#_evict), so one run cannot trim below min.
      return Date.now() - resource.lastIdleTime > config.softIdleTimeoutMillis && available > config.min;
    },
  );
  gp.on('factoryDestroyError', (err: unknown) => log.warn({ err: errorMessage(err) }, 'destroy failed'));

  return {
    start: () => gp.start(),

    available: () => gp.available,

    warmedOnce: () => warm,

    keepsSpares: () => minIdle > 0,

    setTarget(spares) {
      if (!cfg.enabled || closed) return;
      const next = Math.max(minIdle, Math.min(cfg.maxSize, Math.floor(spares)));
      if (next === target) return;
      target = next;
      setMinimum(gp, next);
    },

    target: () => target,

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

    async take() {
      // No spare left: this acquire waits for a start, so deferred ones begin now.
      if (gp.available === 0) startDeferredRefills();
      const borrow = gp.acquire();
      let leave: (() => void) | undefined;
      const failFast = new Promise<never>((_, reject) => {
        let failed = false;
        leave = starts.enlist((err) => {
          // Already failed (its clean-up runs a microtask later): not a waiter any more.
          if (failed) return false;
          if (err instanceof SandpoolError && err.code === 'SHUTTING_DOWN') {
            failed = true;
            reject(err);
            return true;
          }
          // A spare is there for it: this waiter is served, the next one pays.
          if (gp.available > 0) return false;
          failed = true;
          // The start's own error says it for the user; its detail (the engine's reason) stays for the log.
          reject(err instanceof SandpoolError ? err : new SandpoolError('SANDBOX_FAILED', 'a sandbox could not be started; try again shortly', { cause: err, detail: err.message }));
          return true;
        });
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
        throw err;
      } finally {
        leave?.();
      }
      handedOut.add(sb);
      await gp.destroy(sb);
      if (gp.available === 0) startDeferredRefills();
      return sb;
    },

    evictDead: () => evictNow(gp),

    async drain() {
      closed = true;
      clearTimeout(refillTimer);
      startDeferredRefills();
      // Only generic-pool's draining flag matters (no more refills). Its drain()
      // also waits for acquire requests we already failed, which stay queued
      // until the acquire timeout: awaiting it would spend the whole budget.
      void gp.drain().catch(() => undefined);
      // clear() waits for starts in flight (they destroy what they make), then destroys the idle ones.
      await gp.clear();
    },
  };
}
