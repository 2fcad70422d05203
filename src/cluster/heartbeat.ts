import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ReplicaRecord, SharedState } from '../state/types.js';

/** Options of createHeartbeat. */
export interface HeartbeatOptions {
  state: SharedState;
  replicaId: string;
  startedAtMs: number;
  /** Default 2000. A replica is dead 3 intervals after its last beat. */
  intervalMs: number;
  /** What this replica publishes (pool stats, connections, ...). */
  snapshot: () => Record<string, unknown>;
  /** Users whose sandbox this replica holds: their ownership is renewed with each beat. */
  leasedUsers: () => string[];
  /** TTL given to renewed ownership records. */
  ownerTtlMs: number;
  /** Removes a dead replica's containers; called by whichever survivor notices first. */
  onDeadReplica: (replicaId: string) => Promise<void>;
  logger: Logger;
}

export interface Heartbeat {
  /** Beats once (so other replicas see this one before it serves), then every interval. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Heartbeat TTL: how long after its last beat a replica counts as dead. */
  readonly ttlMs: number;
  /** From the last beat's view: is that replica alive? (This one always is.) */
  isLive(replicaId: string): boolean;
  /**
   * Like isLive, but a replica missing from the last beat's view is looked up
   * now: one that started after that beat is alive, and taking over its
   * sessions would give a user a second workspace.
   */
  checkLive(replicaId: string): Promise<boolean>;
  /** Live replicas' published records, read now. */
  live(): Promise<ReplicaRecord[]>;
}

export function createHeartbeat(options: HeartbeatOptions): Heartbeat {
  const { state, replicaId } = options;
  const log = options.logger.child({ component: 'Heartbeat' });
  const ttlMs = options.intervalMs * 3;
  let liveSet = new Set<string>([replicaId]);
  let timer: NodeJS.Timeout | undefined;
  let beating: Promise<void> | undefined;
  let failing = false;

  const record = (): ReplicaRecord => ({
    ...options.snapshot(),
    replica: replicaId,
    pid: process.pid,
    startedAtMs: options.startedAtMs,
    seenAtMs: Date.now(),
  });

  async function beat(): Promise<void> {
    try {
      await state.replicas.heartbeat(record(), ttlMs);
      await state.owners.renew(options.leasedUsers(), replicaId, options.ownerTtlMs);
      const live = await state.replicas.live();
      liveSet = new Set([replicaId, ...live.map((r) => r.replica)]);
      for (const dead of await state.replicas.dead()) {
        if (dead === replicaId) continue;
        log.warn({ deadReplica: dead }, 'replica heartbeat expired: removing its containers');
        await options.onDeadReplica(dead);
        await state.replicas.bury(dead);
      }
      if (failing) log.info('heartbeat restored');
      failing = false;
    } catch (err) {
      if (!failing) log.error({ err: errorMessage(err) }, 'heartbeat failed (shared state unreachable)');
      failing = true;
    }
  }

  const beatOnce = (): Promise<void> => (beating ??= beat().finally(() => (beating = undefined)));

  return {
    ttlMs,
    async start() {
      await beatOnce();
      timer = setInterval(() => void beatOnce(), options.intervalMs);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      await beating;
      await state.replicas.leave(replicaId).catch(() => undefined);
    },
    isLive: (id) => liveSet.has(id),
    async checkLive(id) {
      if (liveSet.has(id)) return true;
      // Unreachable shared state: assume alive, so nothing is taken over on a guess.
      return state.replicas.isLive(id).catch(() => true);
    },
    live: () => state.replicas.live(),
  };
}
