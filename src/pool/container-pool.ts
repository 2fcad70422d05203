import type { Tool } from '../protocol/mcp-types.js';
import { SandpoolError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Sandbox } from '../mcp/sandbox.js';
import type { ContainerRuntime } from '../runtime/types.js';
import { withTimeout } from '../util/async.js';
import { createLeaseBook } from './lease-book.js';
import { createParkBook, type EvictReason } from './park-book.js';
import type { PoolStats } from './pool-stats.js';
import { createRemovalQueue } from './removal-queue.js';
import { createSpecMaker } from './sandbox-spec.js';
import type { PoolSettings, SandboxLimits } from './settings.js';
import { createSparePool } from './spare-pool.js';
import { createSpareTarget } from './spare-target.js';
import { createStartScheduler } from './start-scheduler.js';
import type { Lease, ParkEvictReason, PoolObserver } from './types.js';

export { ownerLabel } from './sandbox-spec.js';

export interface ContainerPool {
  /** Starts warming POOL_MIN_SIZE sandboxes in the background. */
  start(): void;
  /** Resolves true once minSize sandboxes are idle (or false after timeoutMs). */
  whenWarm(timeoutMs: number): Promise<boolean>;
  /** Whether the pool has been warm once since it started: it served, whatever it can do right now. */
  hasWarmed(): boolean;
  /** A ready sandbox, in ms when one is warm. Rejects with POOL_EXHAUSTED, SANDBOX_FAILED or SHUTTING_DOWN. */
  acquire(): Promise<Lease>;
  stats(): PoolStats;
  /** tools/list of this pool's image, known once one sandbox has started. */
  tools(): readonly Tool[] | undefined;
  /** Ids of every sandbox this pool currently owns: idle, leased or being destroyed (a start in flight only once it finished). */
  ownedIds(): ReadonlySet<string>;
  /** Destroys every sandbox, leased and parked ones included, within timeoutMs. */
  drain(timeoutMs: number): Promise<void>;
  /**
   * The user's parked sandbox (Lease.park), thawed and answering, as a new
   * lease. Undefined when none is parked here for them, or when it did not
   * come back: then it was removed, and the caller starts the user a fresh
   * one from their snapshot.
   */
  resume(userId: string): Promise<Lease | undefined>;
  /** Removes the user's parked sandbox (wipe, ownership lost); false when none is parked here. */
  evictParked(userId: string, reason: EvictReason): boolean;
  /** Users with a sandbox parked here, least recently parked first. */
  parkedUsers(): string[];
  /** Tells `listener` of every parked sandbox removed without its user coming back (count, ttl, demand, wipe, shutdown, ownership). */
  onParkedEvicted(listener: (userId: string, reason: ParkEvictReason) => void): void;
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
  /** Longest a removal waits for starts to finish before it runs anyway. Default 2000. */
  removalMaxDeferMs?: number;
  /** How often the spare target is recomputed from demand. Default 1000. */
  retargetIntervalMs?: number;
  /** Arrivals are averaged over this long before the peak is taken. Default 10000. */
  demandAveragingMs?: number;
  /**
   * Consecutive failed starts after which the failure counts as persistent (a
   * broken image, a dead engine): every waiting acquire then fails with
   * SANDBOX_FAILED, and new ones fail at once while the backoff runs. Below it,
   * each failure fails only the oldest waiter, so one transient failure (a start
   * timeout under load) costs one request, not a whole burst. Default 3.
   */
  persistentFailureThreshold?: number;
}

/**
 * The pool as callers see it, composed of its parts: the start scheduler
 * (when and how sandboxes start, and who pays for a failed start), the spare
 * pool (generic-pool keeping warm spares), the spare target (how many, from
 * demand), the lease book (what is owned and leased, and the bounded destroy)
 * and the removal queue (removals off the path of starts). What is left here
 * is admission (waiters, fail-fast), readiness, stats and the order of drain.
 */
export function createContainerPool(options: ContainerPoolOptions): ContainerPool {
  const { runtime } = options;
  const cfg = options.pool;
  const log = options.logger.child({ component: 'ContainerPool' });
  const starts = createStartScheduler({
    runtime,
    makeSpec: createSpecMaker({ pool: cfg, sandbox: options.sandbox, replicaId: options.replicaId, poolName: options.name ?? 'default' }),
    createTimeoutMs: cfg.createTimeoutMs,
    createConcurrency: cfg.createConcurrency,
    backoffBaseMs: options.backoffBaseMs ?? 250,
    backoffMaxMs: options.backoffMaxMs ?? 30_000,
    persistentFailureThreshold: options.persistentFailureThreshold ?? 3,
    log,
    sandboxLogger: options.logger,
    observer: options.observer,
  });
  const removals = createRemovalQueue({
    concurrency: cfg.removeConcurrency,
    startsBusy: () => starts.stats().creating > 0,
    maxDeferMs: options.removalMaxDeferMs ?? 2_000,
  });
  const book = createLeaseBook({
    maxSize: cfg.maxSize,
    log,
    observer: options.observer,
    removals,
    // Both called only after spares exists: a sandbox dies, or is leased, after it was started.
    onIdleDeath: () => spares.evictDead(),
    takeReplacement: () => spares.take(),
    park: parkSandbox,
  });
  const parkListeners: Array<(userId: string, reason: ParkEvictReason) => void> = [];
  const parkBook = createParkBook<Sandbox>({
    maxParked: cfg.parkMax,
    ttlMs: cfg.parkTtlS * 1000,
    evict(entry, reason) {
      log.info({ user: entry.userId, sandbox: entry.sandbox.id.slice(0, 12), reason }, 'removing a parked sandbox');
      options.observer?.parkEvicted?.(reason);
      void book.destroy(entry.sandbox);
      for (const listener of parkListeners) listener(entry.userId, reason);
    },
  });
  const spares = createSparePool({
    settings: cfg,
    evictionIntervalMs: options.evictionIntervalMs ?? Math.min(5_000, cfg.idleTimeoutMs),
    starts,
    book,
    log,
  });
  const demand = createSpareTarget({
    floor: cfg.enabled ? cfg.minSize : 0,
    ceiling: Math.min(cfg.maxSize, Math.floor(cfg.sparesMemoryMb / Math.max(1, cfg.idleSandboxMemoryMb))),
    windowMs: cfg.demandWindowMs,
    averagingMs: options.demandAveragingMs ?? 10_000,
    headroom: cfg.demandHeadroom,
    defaultStartMs: 1_000,
    refillDelayMs: cfg.refillDelayMs,
  });
  let retargetTimer: NodeJS.Timeout | undefined;
  let parkTimer: NodeJS.Timeout | undefined;
  let waiting = 0;
  let draining = false;

  /** Moves the spares to what the recent demand needs (arrivals during one start, with headroom). */
  function retarget(): void {
    if (draining) return;
    // The median start, not the tail: under overload the tail grows with the queue, and spares cannot fix a start rate below the arrival rate.
    spares.setTarget(demand.target(starts.stats().createLatencyMs.p50));
    yieldToSpares();
  }

  /**
   * Parking yields to the spares too: the next new users' warm sandboxes
   * (POOL_MIN_SIZE, or the demand's target) come before a returning user's
   * frozen one, whose files are in the snapshot. When every slot is taken and
   * the spares, those starting and the slots being freed fall short of the
   * target, the least recently parked sandbox makes room (one at a time: a
   * removal in flight counts as room coming).
   */
  function yieldToSpares(): void {
    // Not while starts fail: a frozen sandbox that works beats a slot for a start that does not.
    if (draining || parkBook.size() === 0 || book.freeSlots() > 0 || starts.backoffRemainingMs() > 0) return;
    if (spares.available() + starts.stats().creating + removals.pending() < spares.target()) parkBook.evictOldest('demand');
  }

  /** The lease book's park hook: freeze the sandbox, then book it for its user (which may evict the oldest). */
  async function parkSandbox(userId: string, sb: Sandbox): Promise<boolean> {
    if (draining || cfg.parkMax === 0) return false;
    await sb.park();
    // Drain may have swept while the engine paused it: it goes with the rest.
    if (draining) return false;
    parkBook.park(userId, sb);
    return true;
  }

  /**
   * Parking yields to demand: an acquire that would wait for a slot under
   * maxSize (no spare, no start in flight for it, every slot taken) frees the
   * least recently parked sandbox's slot. The user who parked it loses only
   * speed: their files are in the snapshot.
   */
  function makeRoom(): void {
    if (parkBook.size() === 0 || book.freeSlots() > 0) return;
    const supply = spares.available() + starts.stats().creating;
    if (waiting + 1 > supply) parkBook.evictOldest('demand');
  }

  function isReady(): boolean {
    if (draining || !spares.warmedOnce()) return false;
    if (starts.stats().consecutiveFailures === 0 || spares.available() > 0) return true;
    // Failing to start sandboxes with none in stock. With warm spares wanted,
    // the background refill keeps probing until a start succeeds; without
    // (pool off, or min 0) nothing probes before the next acquire, so only the
    // backoff window may count, or one failed start would mean 503 forever.
    return !spares.keepsSpares() && starts.backoffRemainingMs() === 0;
  }

  /** What a failed take() means for the caller. */
  function acquireError(err: unknown): SandpoolError {
    if (err instanceof SandpoolError) return err;
    if (err instanceof Error && err.name === 'TimeoutError') {
      return new SandpoolError(
        'POOL_EXHAUSTED',
        `no sandbox became free within ${Math.round(cfg.acquireTimeoutMs / 1000)} s: this server is busy; try again shortly`,
        { detail: `${book.stats().active} in use, ${starts.stats().creating} starting, max ${cfg.maxSize}` },
      );
    }
    return new SandpoolError('SANDBOX_FAILED', 'no sandbox could be had; try again shortly', { cause: err, detail: `acquire failed: ${errorMessage(err)}` });
  }

  return {
    start() {
      log.info(`[ContainerPool] Initializing with min=${cfg.minSize}, max=${cfg.maxSize} (${cfg.enabled ? 'pooled' : 'on demand'}, runtime=${runtime.kind})`);
      if (!runtime.isolated) log.warn('[ContainerPool] sandboxes run as plain processes: NOT ISOLATED from this host (no Docker engine)');
      if (spares.keepsSpares()) log.info(`[ContainerPool] Warming up ${cfg.minSize} containers...`);
      spares.start();
      if (cfg.enabled) {
        retargetTimer = setInterval(retarget, options.retargetIntervalMs ?? 1_000);
        retargetTimer.unref();
      }
      if (cfg.parkMax > 0) {
        parkTimer = setInterval(() => parkBook.expire(), Math.min(1_000, cfg.parkTtlS * 1000));
        parkTimer.unref();
      }
    },

    whenWarm: (timeoutMs) => spares.whenWarm(timeoutMs),
    hasWarmed: () => spares.warmedOnce(),

    async acquire() {
      if (draining) throw new SandpoolError('SHUTTING_DOWN', 'this replica is shutting down');
      // Counted here, not by generic-pool: acquires we abandoned must not count.
      if (waiting >= cfg.maxWaitingClients) {
        throw new SandpoolError('POOL_EXHAUSTED', `too many requests are waiting for a sandbox (${waiting}); try again shortly`);
      }
      const refusal = spares.available() === 0 ? starts.refusal() : undefined;
      if (refusal) throw refusal;
      demand.recordArrival();
      retarget();
      makeRoom();
      const started = performance.now();
      waiting++;
      let sb: Sandbox;
      try {
        sb = await spares.take();
      } catch (err) {
        throw acquireError(err);
      } finally {
        waiting--;
      }
      // The spare just taken is refilled; with every slot parked, that refill needs one.
      yieldToSpares();
      return book.lease(sb, performance.now() - started);
    },

    stats() {
      const leases = book.stats();
      const made = starts.stats();
      return {
        idle: leases.idle,
        active: leases.active,
        parked: leases.parked,
        maxParked: cfg.parkMax,
        total: leases.idle + leases.active + leases.parked + made.creating,
        maxPoolSize: cfg.maxSize,
        minPoolSize: cfg.minSize,
        pending: waiting,
        creating: made.creating,
        spareTarget: spares.target(),
        arrivalRate: Math.round(demand.arrivalRate() * 100) / 100,
        removing: leases.removing,
        replaced: leases.replaced,
        enabled: cfg.enabled,
        runtime: runtime.kind,
        isolated: runtime.isolated,
        ready: isReady(),
        draining,
        created: made.created,
        destroyed: leases.destroyed,
        failed: made.failed,
        acquired: leases.acquired,
        consecutiveFailures: made.consecutiveFailures,
        lastError: made.lastError,
        acquireLatencyMs: leases.acquireLatencyMs,
        createLatencyMs: made.createLatencyMs,
      };
    },

    tools: () => starts.tools(),

    ownedIds: () => book.ownedIds(),

    async drain(timeoutMs) {
      if (draining) return;
      draining = true;
      clearInterval(retargetTimer);
      clearInterval(parkTimer);
      // Parked sandboxes go first: nobody is waiting on them.
      parkBook.clear('shutdown');
      const deadline = Date.now() + timeoutMs;
      const left = (): number => Math.max(1, deadline - Date.now());
      // Stop the inflow first (no slots, no starts, waiters failed), then empty.
      book.close(deadline);
      starts.stop();
      log.info({ idle: spares.available(), active: book.stats().active }, '[ContainerPool] draining');
      const warn = (err: unknown): void => log.warn({ err: errorMessage(err) }, 'pool drain incomplete');
      await withTimeout(Promise.allSettled([spares.drain(), book.releaseLeases()]), left(), 'pool drain').catch(warn);
      // Anything still owned (a start that finished during drain) goes too.
      await withTimeout(book.destroyAll(), left(), 'pool drain').catch(warn);
      log.info({ destroyed: book.stats().destroyed }, '[ContainerPool] drained');
    },

    async resume(userId) {
      const entry = parkBook.take(userId);
      if (!entry) return undefined;
      const sb = entry.sandbox;
      const started = performance.now();
      try {
        if (draining) throw new SandpoolError('SHUTTING_DOWN', 'this replica is shutting down');
        await withTimeout(sb.resume(cfg.resumeTimeoutMs), cfg.resumeTimeoutMs, `resume sandbox ${sb.id.slice(0, 12)}`);
      } catch (err) {
        log.warn({ user: userId, sandbox: sb.id.slice(0, 12), err: errorMessage(err) }, 'could not resume a parked sandbox; removing it');
        options.observer?.parkEvicted?.('failed');
        await book.destroy(sb);
        return undefined;
      }
      const ms = performance.now() - started;
      options.observer?.resumed?.(ms);
      return book.resumeLease(sb, ms);
    },

    evictParked: (userId, reason) => parkBook.remove(userId, reason),

    parkedUsers: () => parkBook.users(),

    onParkedEvicted(listener) {
      parkListeners.push(listener);
    },
  };
}
