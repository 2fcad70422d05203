import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ReplicaRecord } from '../cluster/replica-record.js';
import type { DeadReplica, ReplicaRegistry } from '../state/types.js';

/**
 * Cleans up after replicas whose heartbeat expired: their containers go on
 * the strongest evidence that their owner is gone (see the sweeper's
 * removeDeadReplica), and a replica is forgotten once none is left. It runs
 * on its own timer, outside the heartbeat: a survivor busy removing
 * containers must not miss its own beats.
 */
export interface DeadReplicaReaper {
  start(): void;
  stop(): Promise<void>;
  /** One pass (tests). */
  reap(): Promise<void>;
}

export function createDeadReplicaReaper(options: {
  registry: ReplicaRegistry;
  self: string;
  /**
   * The node this replica runs on (NODE_NAME). A dead replica of another node
   * is not this one's to clean up: its containers are on that node's engine,
   * which this replica cannot see (a swarm node's replicas reach only their
   * own engine). It is left to that node's replicas, and forgotten here only
   * after `forgetOtherNodeAfterMs`.
   */
  node: string;
  forgetOtherNodeAfterMs: number;
  intervalMs: number;
  /** The other live replicas as of this replica's last beat (Liveness.peers: no read of its own). */
  peers(): readonly ReplicaRecord[];
  /**
   * Removes that replica's containers whose owner is gone; `kept` counts those
   * whose owner still exists, `failed` those whose removal failed.
   */
  removeReplica(dead: DeadReplica): Promise<{ removed: readonly string[]; kept: number; failed: number }>;
  logger: Logger;
}): DeadReplicaReaper {
  const log = options.logger.child({ component: 'DeadReplicaReaper' });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  /** Dead replicas whose owner still exists (logged once). */
  const waiting = new Set<string>();
  /**
   * Other replicas this one has seen alive, with their last beat. Shared state
   * can forget a replica (Redis restarted without persistence, a flush): one
   * that dies before its next beat would then be listed nowhere, and its
   * containers would wait for the orphan sweep. This replica still remembers it.
   */
  const remembered = new Map<string, { lastSeenAtMs: number; node: string | undefined }>();
  /** Dead replicas of other nodes (logged once). */
  const elsewhere = new Set<string>();

  async function reapOnce(): Promise<void> {
    let dead: DeadReplica[];
    try {
      dead = await options.registry.dead();
    } catch {
      return; // shared state unreachable: the heartbeat reports that
    }
    const live = options.peers();
    for (const r of live) remembered.set(r.replica, { lastSeenAtMs: r.seenAtMs, node: r.node });
    const known = new Set([...dead, ...live].map((r) => r.replica));
    for (const [replica, { lastSeenAtMs, node }] of remembered) if (!known.has(replica)) dead.push({ replica, lastSeenAtMs, ...(node === undefined ? {} : { node }) });
    // One that came back and dies again is reported again.
    for (const replica of waiting) if (!dead.some((d) => d.replica === replica)) waiting.delete(replica);
    for (const entry of dead) {
      if (entry.replica === options.self) continue;
      if (entry.node !== undefined && entry.node !== options.node) {
        // Finding none of its containers on this node's engine says nothing: they are on its own node's.
        // Forgetting it now would leave them to the 24 h orphan grace when that node comes back.
        if (Date.now() - entry.lastSeenAtMs > options.forgetOtherNodeAfterMs) {
          await options.registry.bury(entry.replica).catch(() => undefined);
          remembered.delete(entry.replica);
          elsewhere.delete(entry.replica);
        } else if (!elsewhere.has(entry.replica)) {
          elsewhere.add(entry.replica);
          log.info({ deadReplica: entry.replica, node: entry.node }, 'replica of another node is gone: its containers there are left to that node\'s replicas');
        }
        continue;
      }
      elsewhere.delete(entry.replica);
      try {
        const { removed, kept, failed } = await options.removeReplica(entry);
        // Its owner may only be stalled: keep looking until it beats again or is gone.
        if (kept > 0) {
          if (!waiting.has(entry.replica)) log.warn({ deadReplica: entry.replica, kept }, 'replica heartbeat expired, but its owner process still exists: keeping its containers');
          waiting.add(entry.replica);
          continue;
        }
        waiting.delete(entry.replica);
        if (failed > 0) {
          log.warn({ deadReplica: entry.replica, failed }, 'could not remove some of a dead replica\'s containers; trying again later');
          continue;
        }
        // A create the dead replica had sent may still complete in the engine after
        // this pass listed its containers: forget the replica only after a pass
        // that found nothing of it, so such a late container is removed too.
        if (removed.length > 0) {
          log.warn({ deadReplica: entry.replica, removed: removed.length }, 'replica is gone: removed its containers');
          continue;
        }
        await options.registry.bury(entry.replica);
        remembered.delete(entry.replica);
        log.info({ deadReplica: entry.replica }, 'dead replica forgotten: none of its containers is left');
      } catch (err) {
        log.warn({ deadReplica: entry.replica, err: errorMessage(err) }, 'could not clean up a dead replica; trying again later');
      }
    }
  }

  const reap = (): Promise<void> => (running ??= reapOnce().finally(() => (running = undefined)));

  return {
    reap,
    start() {
      timer ??= setInterval(() => void reap(), options.intervalMs);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      timer = undefined;
      await running;
    },
  };
}
