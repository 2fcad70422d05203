import { randomBytes } from 'node:crypto';
import type { ChatConfig } from '../config/config.js';
import { SandpoolError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ChatMessage } from '../agent/types.js';
import type { ContainerPool, Lease } from '../pool/container-pool.js';

/**
 * One user's conversation on this replica: shared by all of the user's
 * sockets (tabs), holding the history and, from the first tool call on, the
 * user's own sandbox lease.
 */
export interface Session {
  readonly id: string;
  readonly userId: string;
  readonly createdAtMs: number;
  /** Completed exchanges only; a request in progress works on its own copy. */
  history: ChatMessage[];
  lastActivityMs: number;
  sockets: number;
  /** Aborted when the session ends: cancels the user's requests in flight. */
  readonly abort: AbortController;
}

export interface SessionManager {
  /** The user's session, created on first use. Refuses with TOO_MANY_REQUESTS at MAX_SESSIONS. */
  open(userId: string): Session;
  get(userId: string): Session | undefined;
  socketConnected(userId: string): Session;
  socketDisconnected(userId: string): void;
  /** Marks activity: postpones the idle release. */
  touch(session: Session): void;
  /** The user's sandbox, acquired on first use and kept; `fresh` says a dead one was replaced. */
  lease(session: Session): Promise<{ lease: Lease; fresh: boolean; replacedDead: boolean }>;
  /** Appends a finished exchange, trimming old ones at user-turn boundaries. */
  commit(session: Session, messages: readonly ChatMessage[]): void;
  count(): number;
  /** Ends every session (shutdown). */
  closeAll(reason: string): Promise<void>;
}

const MAX_HISTORY_MESSAGES = 60;

export function createSessionManager(options: { chat: ChatConfig; pool: ContainerPool; logger: Logger }): SessionManager {
  const { chat, pool } = options;
  const log = options.logger.child({ component: 'Sessions' });
  const sessions = new Map<string, Session>();
  const leases = new Map<Session, Lease>();
  const leasing = new Map<Session, Promise<Lease>>();
  const idleTimers = new Map<Session, NodeJS.Timeout>();
  const graceTimers = new Map<Session, NodeJS.Timeout>();

  async function releaseLease(session: Session, why: string): Promise<void> {
    const lease = leases.get(session);
    leases.delete(session);
    if (lease) {
      log.info({ user: session.userId, sandbox: lease.sandbox.id.slice(0, 12), why }, 'releasing sandbox');
      await lease.release().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'release failed'));
    }
  }

  async function end(session: Session, why: string): Promise<void> {
    if (sessions.get(session.userId) !== session) return;
    sessions.delete(session.userId);
    clearTimeout(idleTimers.get(session));
    clearTimeout(graceTimers.get(session));
    idleTimers.delete(session);
    graceTimers.delete(session);
    session.abort.abort(new SandpoolError('INTERNAL', `session ended: ${why}`));
    // A lease still being acquired is released once it arrives.
    const pendingLease = leasing.get(session);
    if (pendingLease) await pendingLease.then(() => undefined, () => undefined);
    await releaseLease(session, why);
  }

  function armIdle(session: Session): void {
    clearTimeout(idleTimers.get(session));
    const timer = setTimeout(() => {
      // Idle: the sandbox goes; the conversation stays while a socket is open.
      if (session.sockets > 0) void releaseLease(session, 'idle timeout');
      else void end(session, 'idle timeout');
    }, chat.sessionIdleTimeoutMs);
    timer.unref();
    idleTimers.set(session, timer);
  }

  const manager: SessionManager = {
    open(userId) {
      const existing = sessions.get(userId);
      if (existing) return existing;
      if (sessions.size >= chat.maxSessions) {
        throw new SandpoolError('TOO_MANY_REQUESTS', `this replica serves its maximum of ${chat.maxSessions} sessions; try again later`);
      }
      const session: Session = {
        id: randomBytes(16).toString('base64url'),
        userId,
        createdAtMs: Date.now(),
        history: [],
        lastActivityMs: Date.now(),
        sockets: 0,
        abort: new AbortController(),
      };
      sessions.set(userId, session);
      armIdle(session);
      return session;
    },
    get: (userId) => sessions.get(userId),
    socketConnected(userId) {
      const session = manager.open(userId);
      session.sockets++;
      clearTimeout(graceTimers.get(session));
      graceTimers.delete(session);
      return session;
    },
    socketDisconnected(userId) {
      const session = sessions.get(userId);
      if (!session) return;
      session.sockets = Math.max(0, session.sockets - 1);
      if (session.sockets > 0) return;
      // Nobody left to approve or read: after the grace period, cancel and release.
      const timer = setTimeout(() => void end(session, 'user disconnected'), chat.disconnectGraceMs);
      timer.unref();
      graceTimers.set(session, timer);
    },
    touch(session) {
      session.lastActivityMs = Date.now();
      armIdle(session);
    },
    async lease(session) {
      const current = leases.get(session);
      let replacedDead = false;
      if (current) {
        if (current.sandbox.isUsable()) return { lease: current, fresh: false, replacedDead: false };
        log.warn({ user: session.userId, sandbox: current.sandbox.id.slice(0, 12), reason: current.sandbox.failureReason() }, 'session sandbox died');
        await releaseLease(session, 'sandbox died');
        replacedDead = true;
      }
      // Single flight: concurrent first tool calls of one user share one acquire.
      let pending = leasing.get(session);
      if (!pending) {
        pending = pool.acquire().finally(() => leasing.delete(session));
        leasing.set(session, pending);
        const lease = await pending;
        if (sessions.get(session.userId) !== session) {
          await lease.release();
          throw new SandpoolError('INTERNAL', 'the session ended while its sandbox was starting');
        }
        leases.set(session, lease);
        return { lease, fresh: true, replacedDead };
      }
      return { lease: await pending, fresh: false, replacedDead };
    },
    commit(session, messages) {
      session.history.push(...messages);
      if (session.history.length > MAX_HISTORY_MESSAGES) {
        // Cut at a user turn so no tool result is left without its call.
        let cut = session.history.length - MAX_HISTORY_MESSAGES;
        while (cut < session.history.length && session.history[cut]?.role !== 'user') cut++;
        session.history.splice(0, cut);
      }
    },
    count: () => sessions.size,
    async closeAll(reason) {
      await Promise.allSettled([...sessions.values()].map((s) => end(s, reason)));
    },
  };
  return manager;
}
