import type { ReplicaRecord } from '../cluster/replica-record.js';

/** Options of createOverflow. */
export interface OverflowOptions {
  /** Whether this replica can take this user: they are present here, or it is below MAX_SESSIONS. */
  hasRoomFor(userId: string | undefined): boolean;
  /** The other live replicas as of the last heartbeat, with what they published (sessions, maxSessions). */
  peers(): readonly ReplicaRecord[];
}

/**
 * When a replica is full, a new user goes to another replica with room
 * instead of being refused: the handshake gate answers 503 and nginx tries
 * the next replica. Only when no live replica has room (as far as the last
 * heartbeats tell) is the user admitted to the Socket.IO layer here, which
 * refuses with the contract's connect_error TOO_MANY_REQUESTS.
 */
export interface Overflow {
  /** Whether a new handshake with this routing hint should go to another replica. */
  passOn(routingHint: string | undefined): boolean;
}

/** A peer with room for one more user, that is not shutting down. */
function hasRoom(record: ReplicaRecord): boolean {
  return record.sessions < record.maxSessions && !record.draining;
}

export function createOverflow(options: OverflowOptions): Overflow {
  return {
    passOn(routingHint) {
      // The hint names the user nginx routed by: enough to tell a returning user (never an identity).
      if (options.hasRoomFor(routingHint)) return false;
      return options.peers().some(hasRoom);
    },
  };
}
