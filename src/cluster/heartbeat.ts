import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ReplicaRecord, SharedState } from '../state/types.js';
import type { Liveness } from './liveness.js';

/** Options of createHeartbeat. */
export interface HeartbeatOptions {
  state: Pick<SharedState, 'replicas' | 'owners'>;
  liveness: Liveness;
  startedAtMs: number;
  /** A replica is dead 3 intervals after its last beat. */
  intervalMs: number;
  /** What this replica publishes (pool stats, connections, ...). */
  snapshot: () => Record<string, unknown>;
  /** Users whose sandbox this replica holds: their ownership is renewed with each beat. */
  leasedUsers: () => string[];
  /** TTL given to renewed ownership records. */
  ownerTtlMs: number;
  logger: Logger;
}

export interface Heartbeat {
  /** Beats once (so other replicas see this one before it serves), then every interval. */
  start(): Promise<void>;
  /** Stops beating and leaves the cluster. */
  stop(): Promise<void>;
}

/** How long after its last beat a replica counts as dead. */
export function heartbeatTtlMs(intervalMs: number): number {
  return intervalMs * 3;
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
  let timer: NodeJS.Timeout | undefined;
  let beating: Promise<void> | undefined;
  let failing = false;

  const record = (): ReplicaRecord => ({
    ...options.snapshot(),
    replica: liveness.self,
    pid: process.pid,
    startedAtMs: options.startedAtMs,
    seenAtMs: Date.now(),
  });

  async function beat(): Promise<void> {
    try {
      await state.replicas.heartbeat(record(), ttlMs);
      await state.owners.renew(options.leasedUsers(), liveness.self, options.ownerTtlMs);
      liveness.observe(await state.replicas.live());
      if (failing) log.info('heartbeat restored');
      failing = false;
    } catch (err) {
      if (!failing) log.error({ err: errorMessage(err) }, 'heartbeat failed (shared state unreachable)');
      failing = true;
    }
  }

  const beatOnce = (): Promise<void> => (beating ??= beat().finally(() => (beating = undefined)));

  return {
    async start() {
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
