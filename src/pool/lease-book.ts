import { randomUUID } from 'node:crypto';
import { SandboxGoneError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Sandbox } from '../mcp/sandbox.js';
import { LatencyWindow, withTimeout } from '../util/async.js';
import { Capacity } from './capacity.js';
import type { Lease, PoolObserver } from './types.js';
import type { RemovalQueue } from './removal-queue.js';

/** Bound on destroying one sandbox outside of drain (drain uses what is left of its deadline). */
const DESTROY_TIMEOUT_MS = 15_000;
/** Removals at once during drain, which has a deadline to meet. */
const DRAIN_REMOVE_CONCURRENCY = 8;

/** Options of createLeaseBook. */
export interface LeaseBookOptions {
  /** Cap on sandboxes of every state: starting, idle and leased. */
  maxSize: number;
  log: Logger;
  observer?: PoolObserver;
  /** An owned sandbox that is not leased died by itself (not destroyed by us). */
  onIdleDeath(): void;
  /** Where removals wait their turn (off the path of starts). */
  removals: RemovalQueue;
  /** Another sandbox for a lease whose sandbox was found dead on its first use. */
  takeReplacement(): Promise<Sandbox>;
  /**
   * Freezes a sandbox whose lease ended and books it for the user; resolves
   * false (or rejects) when it cannot be parked, and the book destroys it.
   */
  park(userId: string, sandbox: Sandbox): Promise<boolean>;
}

export interface LeaseStats {
  idle: number;
  active: number;
  destroyed: number;
  acquired: number;
  /** Leases whose sandbox was found dead on first use and replaced without the user noticing. */
  replaced: number;
  /** Removals queued or running. */
  removing: number;
  /** Frozen for their users (neither idle nor leased); they hold their slots. */
  parked: number;
  acquireLatencyMs: { p50: number | null; p95: number | null; p99: number | null };
}

/**
 * Which sandboxes this pool owns and in what state (idle, leased, being
 * destroyed), the slots they hold under maxSize, and their one way out: a
 * bounded destroy. Counted here, not read from generic-pool, whose
 * `available` is stale after clear().
 */
export interface LeaseBook {
  /** Waits for a slot under maxSize for a start. Rejects with SHUTTING_DOWN once closed. */
  reserve(): Promise<void>;
  /** Gives back the slot of a start that failed. */
  unreserve(): void;
  /** A started sandbox takes over its start's slot; its death is watched from here on. */
  adopt(sandbox: Sandbox): void;
  /** Hands an owned sandbox to one caller. */
  lease(sandbox: Sandbox, acquireMs: number): Lease;
  /** Hands a parked sandbox, resumed, back to its user: a lease that never swaps it for an empty one. */
  resumeLease(sandbox: Sandbox, resumeMs: number): Lease;
  /** Slots under maxSize free right now (0 while a start waits for one). */
  freeSlots(): number;
  /** Destroys an owned sandbox within the bound and frees its slot, even if the engine does not answer. Shared by concurrent callers. */
  destroy(sandbox: Sandbox): Promise<void>;
  ownedIds(): ReadonlySet<string>;
  stats(): LeaseStats;
  /** From now on starts get no slot, and every destroy must finish by `deadlineMs` (epoch ms). */
  close(deadlineMs: number): void;
  /** Releases every lease (destroying its sandbox). */
  releaseLeases(): Promise<void>;
  /** Destroys whatever is still owned. */
  destroyAll(): Promise<void>;
}

export function createLeaseBook(options: LeaseBookOptions): LeaseBook {
  const { log, observer } = options;
  const slots = new Capacity(options.maxSize);
  const owned = new Map<string, Sandbox>();
  const leased = new Set<Sandbox>();
  /** Owned, frozen for a user: not idle, not leased (see park). */
  const parked = new Set<Sandbox>();
  /** Sandboxes being destroyed by us, with the destroy in progress: their exit is expected. */
  const retiring = new Map<string, Promise<void>>();
  const leases = new Set<Lease>();
  const acquireLatency = new LatencyWindow();
  let destroyed = 0;
  let acquired = 0;
  let replaced = 0;
  let closed = false;
  let deadlineMs: number | undefined;

  function destroyTimeoutMs(): number {
    return deadlineMs === undefined ? DESTROY_TIMEOUT_MS : Math.max(1, Math.min(DESTROY_TIMEOUT_MS, deadlineMs - Date.now()));
  }

  function destroy(sb: Sandbox): Promise<void> {
    // Concurrent callers (lease release, drain) share one destroy.
    const inFlight = retiring.get(sb.id);
    if (inFlight) return inFlight;
    if (!owned.has(sb.id)) return Promise.resolve();
    const done = options.removals
      .run(async () => {
        try {
          // Bounded from when its turn comes: the wait in the queue is not the engine's.
          await withTimeout(sb.destroy(), destroyTimeoutMs(), `destroy sandbox ${sb.id.slice(0, 12)}`);
        } catch (err) {
          // The orphan sweep removes it later by label; the slot must not leak either way.
          log.warn({ sandbox: sb.id.slice(0, 12), err: errorMessage(err) }, 'could not destroy sandbox');
        }
      })
      .finally(() => {
        retiring.delete(sb.id);
        parked.delete(sb);
        if (owned.delete(sb.id)) {
          destroyed++;
          observer?.destroyed?.();
          slots.release();
        }
      });
    retiring.set(sb.id, done);
    return done;
  }

  /**
   * A lease follows its sandbox, or the one that replaced it: a sandbox found
   * dead on the lease's first use (it died idle, and nothing said so yet: no
   * engine call checks it at hand-out) is swapped once for another, and the
   * call runs there. Nothing of the user's was in it yet.
   */
  function makeLease(first: Sandbox, acquireMs: number, resumed = false): Lease {
    let sb = first;
    let released = false;
    // A resumed sandbox holds the user's files: it is never swapped for an empty one.
    let used = resumed;
    let replacing: Promise<Sandbox> | undefined;

    function replace(dead: Sandbox): Promise<Sandbox> {
      replacing ??= (async () => {
        log.warn({ sandbox: dead.id.slice(0, 12), reason: dead.failureReason() }, 'sandbox found dead on first use; replacing it');
        leased.delete(dead);
        void destroy(dead);
        const fresh = await options.takeReplacement();
        if (released) {
          // Released while the replacement came: it goes as the lease did.
          await destroy(fresh);
          throw new SandboxGoneError('this sandbox lease was already released');
        }
        leased.add(fresh);
        sb = fresh;
        replaced++;
        observer?.replaced?.();
        return fresh;
      })();
      return replacing;
    }

    const lease: Lease = {
      id: randomUUID(),
      get sandbox() {
        return sb;
      },
      acquireMs,
      async callTool(name, args, callOptions) {
        if (released) throw new SandboxGoneError('this sandbox lease was already released');
        const target = sb;
        try {
          const result = await target.callTool(name, args, callOptions);
          used = true;
          return result;
        } catch (err) {
          // Only a sandbox that never answered this lease is replaced: the user had nothing in it yet.
          if (!(err instanceof SandboxGoneError)) used = true;
          if (used || target !== first || released || !(err instanceof SandboxGoneError)) throw err;
          const fresh = await replace(target);
          const result = await fresh.callTool(name, args, callOptions);
          used = true;
          return result;
        }
      },
      async release() {
        if (released) return;
        released = true;
        leases.delete(lease);
        const current = sb;
        // A replacement on its way finds the lease released and removes itself.
        await destroy(current);
        leased.delete(current);
      },
      async park(userId) {
        if (released) return false;
        released = true;
        leases.delete(lease);
        const current = sb;
        leased.delete(current);
        // Owned and holding its slot, but nobody's lease and no spare.
        parked.add(current);
        let kept = false;
        if (!closed && !replacing && current.isUsable()) {
          kept = await options.park(userId, current).catch((err: unknown) => {
            log.warn({ sandbox: current.id.slice(0, 12), err: errorMessage(err) }, 'could not park sandbox; removing it');
            return false;
          });
        }
        if (!kept) await destroy(current);
        return kept;
      },
    };
    leases.add(lease);
    return lease;
  }

  return {
    reserve: () => slots.acquire(),

    unreserve: () => slots.release(),

    adopt(sb) {
      owned.set(sb.id, sb);
      void sb.process.exited.then((info) => {
        if (!owned.has(sb.id) || retiring.has(sb.id) || closed) return;
        // Its holder learns from its next call (SandboxGoneError) and releases it.
        if (leased.has(sb)) log.warn({ sandbox: sb.id.slice(0, 12), reason: info.reason }, 'leased sandbox died');
        // Its resume finds it dead (and its user gets a fresh one), or its TTL removes it.
        else if (parked.has(sb)) log.warn({ sandbox: sb.id.slice(0, 12), reason: info.reason }, 'parked sandbox died');
        else {
          log.warn({ sandbox: sb.id.slice(0, 12), reason: info.reason }, 'idle sandbox died; evicting');
          options.onIdleDeath();
        }
      });
    },

    lease(sb, acquireMs) {
      leased.add(sb);
      acquireLatency.record(acquireMs);
      acquired++;
      observer?.acquired?.(acquireMs);
      return makeLease(sb, acquireMs);
    },

    resumeLease(sb, resumeMs) {
      parked.delete(sb);
      leased.add(sb);
      return makeLease(sb, resumeMs, true);
    },

    freeSlots: () => slots.free(),

    destroy,

    ownedIds: () => new Set(owned.keys()),

    stats() {
      const idle = [...owned.values()].filter((sb) => !leased.has(sb) && !parked.has(sb)).length;
      return {
        idle,
        active: leases.size,
        destroyed,
        acquired,
        replaced,
        removing: options.removals.pending(),
        parked: [...parked].filter((sb) => owned.has(sb.id) && !retiring.has(sb.id)).length,
        acquireLatencyMs: acquireLatency.percentiles(),
      };
    },

    close(deadline) {
      closed = true;
      deadlineMs = deadline;
      slots.close();
      options.removals.hurry(DRAIN_REMOVE_CONCURRENCY);
    },

    async releaseLeases() {
      await Promise.allSettled([...leases].map((l) => l.release()));
    },

    async destroyAll() {
      await Promise.allSettled([...owned.values()].map((sb) => destroy(sb)));
    },
  };
}
