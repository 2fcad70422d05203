import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { OwnershipStore } from '../state/types.js';

/**
 * The user's sandbox is held by another live replica: the call belongs there.
 * Internal: the tool runner forwards the call; it never reaches a client.
 */
export class OwnedElsewhereError extends Error {
  constructor(readonly owner: string) {
    super(`the sandbox is held by replica ${owner}`);
    this.name = 'OwnedElsewhereError';
  }
}

/**
 * Which replica holds a user's sandbox, as this replica acts on it: one
 * workspace per user while its replica lives. Claims are renewed with each
 * heartbeat (cluster/heartbeat.ts), which also hands claims another replica
 * took over to SandboxLeases.giveUp.
 */
export interface Ownership {
  /**
   * Claims the user's sandbox for this replica; a dead owner's claim is taken
   * over. Resolves true when a sandbox on another replica was lost that way.
   * Rejects with OwnedElsewhereError while a live replica holds it.
   */
  claim(userId: string): Promise<boolean>;
  /** Gives up this replica's claim (its sandbox went). A failure is logged: the record expires by itself. */
  release(userId: string): Promise<void>;
  /** The live replica other than this one that holds the user's sandbox, if any: where the user's work belongs. */
  liveOwnerElsewhere(userId: string): Promise<string | undefined>;
}

/** Options of createOwnership. */
export interface OwnershipOptions {
  owners: OwnershipStore;
  replicaId: string;
  /** Ownership records expire this long after the last renewal. */
  ownerTtlMs: number;
  /** Whether a replica's heartbeat is current, checked now (a dead owner's claim may be taken over). */
  isReplicaLive: (replicaId: string) => Promise<boolean>;
  logger: Logger;
}

export function createOwnership(options: OwnershipOptions): Ownership {
  const { owners, replicaId, ownerTtlMs } = options;
  const log = options.logger.child({ component: 'Ownership' });
  return {
    async claim(userId) {
      let owner = await owners.claim(userId, replicaId, ownerTtlMs);
      let tookOver = false;
      if (owner !== replicaId && !(await options.isReplicaLive(owner))) {
        tookOver = true;
        log.warn({ user: userId, previousOwner: owner }, 'taking over the sandbox of a dead replica');
        await owners.release(userId, owner);
        owner = await owners.claim(userId, replicaId, ownerTtlMs);
      }
      if (owner !== replicaId) throw new OwnedElsewhereError(owner);
      return tookOver;
    },
    async release(userId) {
      await owners.release(userId, replicaId).catch((err: unknown) => log.warn({ user: userId, err: errorMessage(err) }, 'could not drop sandbox ownership'));
    },
    async liveOwnerElsewhere(userId) {
      const owner = await owners.owner(userId);
      return owner !== undefined && owner !== replicaId && (await options.isReplicaLive(owner)) ? owner : undefined;
    },
  };
}
