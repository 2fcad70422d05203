import type { Presences } from '../chat/presence.js';
import type { ReplicaBus } from '../cluster/replica-bus.js';
import { SandpoolError } from '../errors.js';
import type { OwnershipStore } from '../state/types.js';
import type { SlotLimiter } from '../state/slot-limiter.js';
import type { McpSessionRegistryOptions } from './mcp-sessions.js';

/**
 * What an MCP session means for the rest of sandpool: it counts against the
 * user's connection cap (MAX_SOCKETS_PER_USER, with their sockets, across
 * replicas) and holds the user's presence like a socket does; when it
 * ends, the sandbox is let go unless a chat socket or another session still
 * holds it, here or on the replica that owns it.
 */
export function createMcpSessionHooks(options: {
  sockets: SlotLimiter;
  maxSocketsPerUser: number;
  presences: Pick<Presences, 'attach' | 'detach'>;
  owners: Pick<OwnershipStore, 'owner'>;
  bus: Pick<ReplicaBus, 'release'>;
  replicaId: string;
}): Pick<McpSessionRegistryOptions, 'admit' | 'onOpen' | 'onClose'> {
  const slotOf = (sessionId: string): string => `mcp:${sessionId}`;
  return {
    async admit(userId, sessionId) {
      if (!(await options.sockets.tryAcquire(userId, slotOf(sessionId)))) {
        throw new SandpoolError('TOO_MANY_REQUESTS', `you already have ${options.maxSocketsPerUser} connections open (sockets and MCP sessions, MAX_SOCKETS_PER_USER); end one first`);
      }
    },
    onOpen: (s) => void options.presences.attach(s.userId),
    onClose(s, why) {
      // Held here only by MCP sessions: let go at once (no reconnect grace for a DELETE).
      options.presences.detach(s.userId, 0);
      void options.sockets.release(s.userId, slotOf(s.id)).catch(() => undefined);
      if (why === 'shutdown') return;
      // The sandbox may live on another replica: it releases it there if nothing holds it.
      void options.owners.owner(s.userId).then(
        (owner) => owner !== undefined && owner !== options.replicaId && options.bus.release(owner, s.userId),
        () => undefined,
      );
    },
  };
}
