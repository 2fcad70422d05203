import { errorMessage } from '../errors.js';
import { withTimeout } from '../util/async.js';
import type { Logger } from '../logger.js';
import type { SharedState } from '../state/types.js';
import type { Liveness } from './liveness.js';
import type { ReplicaNumbers, ReplicaRecord } from './replica-record.js';

/** Options of createHeartbeat. */
export interface HeartbeatOptions {
  state: Pick<SharedState, 'replicas' | 'owners'>;
  liveness: Liveness;
  startedAtMs: number;
  /** A replica is dead 3 intervals after its last beat. */
  intervalMs: number;
  /** TTL given to renewed ownership records. */
  ownerTtlMs: number;
  logger: Logger;
  /** The clock (tests move it). Default Date.now. */
  now?: () => number;
}

/** Whose sandboxes this replica holds; registered by the sandbox leases (chat/sandbox-leases.ts) once they exist. */
export interface OwnershipHolder {
  /** Users whose sandbox this replica holds: their ownership is renewed with each beat. */
  leasedUsers(): string[];
  /** Another replica holds these users' records now: their sandboxes here must be given up. */
  giveUp(userIds: readonly string[]): void;
}

export interface Heartbeat {
  /** Beats once (so other replicas see this one before it serves), then every interval. */
  start(): Promise<void>;
  /** Stops beating and leaves the cluster. */
  stop(): Promise<void>;
  /** The ownership records to renew each beat (registered before start). */
  track(holder: OwnershipHolder): void;
  /** What this replica publishes with each beat: its pool's numbers and its users (registered before start). */
  publish(numbers: () => ReplicaNumbers): void;
  /** This replica's record as the next beat will publish it, fresh (after publish). */
  record(): ReplicaRecord;
  /**
   * Resolves once this replica's own heartbeat is current. After a lapse (the
   * process was stalled, Redis unreachable) it beats first, which re-validates
   * every ownership record, so nothing is served from a sandbox another
   * replica has taken over meanwhile.
   */
  ensureCurrent(): Promise<void>;
}

/** How long after its last beat a replica counts as dead. */
export function heartbeatTtlMs(intervalMs: number): number {
  return intervalMs * 3;
}

/** The longest a replica that died still looks live to a reader that polls every beat: its TTL, plus one beat. */
export function deadReplicaVisibleMs(intervalMs: number): number {
  return heartbeatTtlMs(intervalMs) + intervalMs;
}

/**
 * How long an ownership record lives after its last renewal: an idle user's
 * sandbox time plus a dead replica's heartbeat TTL. It outlives its replica
 * on purpose: liveness comes from heartbeats, and a survivor that finds a
 * dead owner can tell the user their sandbox is gone.
 */
export function ownershipTtlMs(sessionIdleTimeoutMs: number, heartbeatIntervalMs: number): number {
  return sessionIdleTimeoutMs + heartbeatTtlMs(heartbeatIntervalMs);
}

/**
 * Publishes this replica's liveness and stats, renews its ownership records,
 * and keeps the liveness view current. It does nothing about dead replicas:
 * that is the reaper's job, on its own timer, so slow cleanup can never make
 * this replica miss its own beats.
 */
export function createHeartbeat(options: HeartbeatOptions): Heartbeat {
  const { state, liveness } = options;
  const log = options.logger.child({ component: 'Heartbeat' });
  const ttlMs = heartbeatTtlMs(options.intervalMs);
  const now = options.now ?? Date.now;
  let timer: NodeJS.Timeout | undefined;
  let beating: Promise<void> | undefined;
  let failing = false;
  let lastOkAtMs = 0;
  let holder: OwnershipHolder = { leasedUsers: () => [], giveUp: () => undefined };
  let numbers: (() => ReplicaNumbers) | undefined;

  const NOT_PUBLISHED = 'heartbeat: publish() what this replica publishes before it starts beating';
  const record = (): ReplicaRecord => {
    if (!numbers) throw new Error(NOT_PUBLISHED);
    return { ...numbers(), replica: liveness.self, pid: process.pid, startedAtMs: options.startedAtMs, seenAtMs: now() };
  };

  async function beat(): Promise<void> {
    const startedAtMs = now();
    const lapsed = lastOkAtMs > 0 && startedAtMs - lastOkAtMs > ttlMs;
    // A beat that never settles (a Redis command lost across a reconnect) would
    // hold every later beat behind it for good: each beat gets one interval,
    // and what a given-up beat learns later is not acted on.
    let givenUp = false;
    const steps = (async () => {
      await state.replicas.heartbeat(record(), ttlMs);
      const lost = await state.owners.renew(holder.leasedUsers(), liveness.self, options.ownerTtlMs);
      if (givenUp) return;
      if (lost.length > 0) {
        log.warn({ users: lost.length, lapsed }, 'another replica took over sandboxes of this one (it was unreachable): giving them up');
        holder.giveUp(lost);
      }
      const live = await state.replicas.live();
      if (!givenUp) liveness.observe(live);
    })();
    try {
      await withTimeout(steps, Math.max(options.intervalMs, 1_000), 'heartbeat').catch((err: unknown) => {
        givenUp = true;
        steps.catch(() => undefined);
        throw err;
      });
      if (failing || lapsed) log.info({ lapsedMs: startedAtMs - lastOkAtMs }, 'heartbeat restored; ownership records re-validated');
      failing = false;
      lastOkAtMs = startedAtMs;
    } catch (err) {
      if (!failing) log.error({ err: errorMessage(err) }, 'heartbeat failed (shared state unreachable)');
      failing = true;
    }
  }

  const beatOnce = (): Promise<void> => (beating ??= beat().finally(() => (beating = undefined)));

  return {
    track(h) {
      holder = h;
    },
    publish(n) {
      numbers = n;
    },
    record,
    async ensureCurrent() {
      if (now() - lastOkAtMs <= ttlMs) return;
      await beatOnce();
    },
    async start() {
      if (!numbers) throw new Error(NOT_PUBLISHED);
      await beatOnce();
      timer = setInterval(() => void beatOnce(), options.intervalMs);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      await beating;
      await state.replicas.leave(liveness.self).catch(() => undefined);
    },
  };
}
