import type { ReplicaRegistry } from '../state/types.js';
import type { ReplicaRecord } from './replica-record.js';

/**
 * Which replicas are alive: the one view that the heartbeat keeps current and
 * that ownership (taking over a dead owner's user), the chat service (routing
 * to an owner) and the orphan sweeper (never removing a live replica's
 * containers) read.
 */
export interface Liveness {
  readonly self: string;
  /**
   * Looked up now, not from the last beat's view: a replica that started
   * after that beat is alive (taking over its users' sandboxes would give a user a
   * second workspace), and one whose heartbeat expired since is dead (waiting
   * for the next beat would send its users' messages to a replica that can no
   * longer answer). Alive when shared state cannot answer.
   */
  isLive(replicaId: string): Promise<boolean>;
  /** Live replicas' published records, read now. */
  live(): Promise<ReplicaRecord[]>;
  /** The other live replicas' records as of the last beat (no read: for decisions on every handshake). */
  peers(): readonly ReplicaRecord[];
  /** The heartbeat reports what it read. */
  observe(live: readonly ReplicaRecord[]): void;
}

export function createLiveness(options: { registry: ReplicaRegistry; self: string }): Liveness {
  const { registry, self } = options;
  let others: readonly ReplicaRecord[] = [];
  return {
    self,
    async isLive(replicaId) {
      if (replicaId === self) return true;
      // Unreachable shared state: assume alive, so nothing is taken over on a guess.
      return registry.isLive(replicaId).catch(() => true);
    },
    live: () => registry.live(),
    peers: () => others,
    observe(live) {
      others = live.filter((r) => r.replica !== self);
    },
  };
}
