import type { ChatSettings } from './settings.js';
import { CancelledError, SandpoolError, errorMessage, type CancelReason } from '../errors.js';
import type { Logger } from '../logger.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { WorkspaceChannel } from '../mcp/workspace-channel.js';
import type { RestoreOutcome, Workspaces } from '../workspace/workspaces.js';
import type { StartedFresh } from '../protocol/events.js';
import type { OwnershipStore } from '../state/types.js';

/**
 * One user's presence on this replica: shared by all of the user's sockets
 * (tabs) here, holding, from the first approved tool call on, the user's own
 * sandbox lease. The conversation itself lives in the shared ConversationStore.
 */
export interface Session {
  readonly userId: string;
  /** What holds the session open here: the user's sockets and MCP sessions. */
  holders: number;
  /** Requests of this user running on this replica: the idle release waits for them. */
  running: number;
  /** Aborted (with a CancelledError) when the session ends: cancels the user's requests running here. */
  readonly abort: AbortController;
  /** The largest snapshot of the user's files: their plan's workspaceMaxBytes, as of their latest call here (WORKSPACE_MAX_BYTES before any). */
  workspaceMaxBytes?: number;
}


/** A user's hold on a sandbox, as sessions use it (the pool's Lease is one). */
export interface UserLease {
  readonly sandbox: {
    readonly id: string;
    /** Where the sandbox's files are as its MCP server sees them. */
    readonly workspaceDir: string;
    isUsable(): boolean;
    failureReason(): string | undefined;
    /** Snapshot and restore of its /workspace, when its image offers them. */
    readonly workspace: WorkspaceChannel | undefined;
  };
  callTool(name: string, args: Record<string, unknown>, options?: { timeoutMs?: number }): Promise<CallToolResult>;
  /** Destroys the sandbox. */
  release(): Promise<void>;
}

/** Where sessions take sandboxes from (the container pool). */
export interface SandboxSource {
  acquire(): Promise<UserLease>;
}

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

export interface SessionManager {
  /** The user's session here, created on first use. Refuses with TOO_MANY_REQUESTS at MAX_SESSIONS. */
  open(userId: string): Session;
  get(userId: string): Session | undefined;
  /** A socket or MCP session of the user opened here: the session stays while any holds it. */
  attach(userId: string): Session;
  /**
   * One let go. When the last one has gone, the session ends after `graceMs`
   * (default SESSION_DISCONNECT_GRACE_MS; a reconnect within it keeps
   * everything): its requests are cancelled and its sandbox released.
   */
  detach(userId: string, graceMs?: number): void;
  /** Ends the session now if nothing holds it and nothing runs (another replica's MCP session ended). */
  releaseIfUnheld(userId: string): Promise<void>;
  /** The user wiped their workspace: their sandbox here goes without a last snapshot, and their snapshot with it. */
  wipe(userId: string): Promise<void>;
  /** Marks activity: postpones the idle release. */
  touch(session: Session): void;
  /**
   * The user's sandbox, acquired on first use and kept. Rejects with
   * OwnedElsewhereError when another live replica holds it.
   */
  lease(session: Session): Promise<{ lease: UserLease; startedFresh: StartedFresh; restore?: RestoreOutcome }>;
  /** Users whose sandbox this replica holds (their ownership is renewed with the heartbeat). */
  leasedUsers(): string[];
  /** Another replica took these users' sandboxes over (this one was unreachable): drop ours, whose files the users no longer see. */
  giveUp(userIds: readonly string[]): void;
  count(): number;
  /** Ends every session (shutdown): their requests are cancelled. */
  closeAll(): Promise<void>;
}

/** Options of createSessionManager. */
export interface SessionManagerOptions {
  chat: ChatSettings;
  pool: SandboxSource;
  owners: OwnershipStore;
  replicaId: string;
  /** Ownership records expire this long after the last renewal. */
  ownerTtlMs: number;
  /** Whether a replica's heartbeat is current, checked now (a dead owner's claim may be taken over). */
  isReplicaLive: (replicaId: string) => Promise<boolean>;
  /** Resolves once this replica's own heartbeat is current (re-validating ownership after a lapse). */
  ensureCurrent: () => Promise<void>;
  /** The users' files across sandboxes: restored into a fresh one, saved when one goes. */
  workspaces: Workspaces;
  logger: Logger;
}

export function createSessionManager(options: SessionManagerOptions): SessionManager {
  const { chat, pool, owners, replicaId } = options;
  const log = options.logger.child({ component: 'Sessions' });
  const sessions = new Map<string, Session>();
  const leases = new Map<Session, UserLease>();
  const leasing = new Map<Session, Promise<{ lease: UserLease; restore: RestoreOutcome }>>();
  const { workspaces } = options;
  const idleTimers = new Map<Session, NodeJS.Timeout>();
  const graceTimers = new Map<Session, NodeJS.Timeout>();

  async function releaseLease(session: Session, why: string): Promise<void> {
    const lease = leases.get(session);
    leases.delete(session);
    if (!lease) return;
    log.info({ user: session.userId, sandbox: lease.sandbox.id.slice(0, 12), why }, 'releasing sandbox');
    // A change not saved yet (its save failed) gets one more try before the files go.
    if (lease.sandbox.isUsable()) await workspaces.save(session.userId, lease.sandbox, session.workspaceMaxBytes);
    workspaces.forget(lease.sandbox);
    await lease.release().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'release failed'));
    await owners.release(session.userId, replicaId).catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'could not drop sandbox ownership'));
  }

  async function end(session: Session, why: string, cancel: CancelReason): Promise<void> {
    if (sessions.get(session.userId) !== session) return;
    sessions.delete(session.userId);
    clearTimeout(idleTimers.get(session));
    clearTimeout(graceTimers.get(session));
    idleTimers.delete(session);
    graceTimers.delete(session);
    session.abort.abort(new CancelledError(cancel));
    // A lease still being acquired is released once it arrives.
    const pendingLease = leasing.get(session);
    if (pendingLease) await pendingLease.then(() => undefined, () => undefined);
    await releaseLease(session, why);
  }

  function armIdle(session: Session): void {
    clearTimeout(idleTimers.get(session));
    const timer = setTimeout(() => {
      // Busy is not idle: look again later (a request's own end re-arms this too).
      if (session.running > 0) return armIdle(session);
      // Idle: the sandbox goes; the session stays while a socket is open.
      if (session.holders > 0) void releaseLease(session, 'idle timeout');
      else void end(session, 'idle timeout', 'user-left');
    }, chat.sessionIdleTimeoutMs);
    timer.unref();
    idleTimers.set(session, timer);
  }

  /**
   * Claims the user's sandbox ownership for this replica; a dead owner's claim
   * is taken over. Resolves true when a sandbox on another replica was lost.
   * Rejects with OwnedElsewhereError when a live replica holds it.
   */
  async function claimOwnership(userId: string): Promise<boolean> {
    let owner = await owners.claim(userId, replicaId, options.ownerTtlMs);
    let tookOver = false;
    if (owner !== replicaId && !(await options.isReplicaLive(owner))) {
      tookOver = true;
      log.warn({ user: userId, previousOwner: owner }, 'taking over the session of a dead replica');
      await owners.release(userId, owner);
      owner = await owners.claim(userId, replicaId, options.ownerTtlMs);
    }
    if (owner !== replicaId) throw new OwnedElsewhereError(owner);
    return tookOver;
  }

  const manager: SessionManager = {
    open(userId) {
      const existing = sessions.get(userId);
      if (existing) return existing;
      if (sessions.size >= chat.maxSessions) {
        throw new SandpoolError('TOO_MANY_REQUESTS', `this replica serves its maximum of ${chat.maxSessions} sessions; try again later`);
      }
      const session: Session = { userId, holders: 0, running: 0, abort: new AbortController() };
      sessions.set(userId, session);
      armIdle(session);
      return session;
    },
    get: (userId) => sessions.get(userId),
    attach(userId) {
      const session = manager.open(userId);
      session.holders++;
      clearTimeout(graceTimers.get(session));
      graceTimers.delete(session);
      return session;
    },
    detach(userId, graceMs = chat.disconnectGraceMs) {
      const session = sessions.get(userId);
      if (!session) return;
      session.holders = Math.max(0, session.holders - 1);
      if (session.holders > 0) return;
      // Nobody left here to approve or read: after the grace period, cancel and release.
      clearTimeout(graceTimers.get(session));
      const timer = setTimeout(() => void end(session, 'user left', 'user-left'), graceMs);
      timer.unref();
      graceTimers.set(session, timer);
    },
    async wipe(userId) {
      const session = sessions.get(userId);
      const lease = session ? leases.get(session) : undefined;
      if (session && lease) {
        leases.delete(session);
        await workspaces.wipe(userId, lease.sandbox);
        workspaces.forget(lease.sandbox);
        log.info({ user: userId, sandbox: lease.sandbox.id.slice(0, 12) }, 'wiping the workspace: releasing its sandbox');
        await lease.release().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'release failed'));
        await owners.release(userId, replicaId).catch(() => undefined);
      } else {
        await workspaces.wipe(userId);
      }
    },
    async releaseIfUnheld(userId) {
      const session = sessions.get(userId);
      if (session && session.holders === 0 && session.running === 0) await end(session, 'its last MCP session ended elsewhere', 'user-left');
    },
    touch(session) {
      armIdle(session);
    },
    async lease(session) {
      // After a stall, ownership is re-validated before any sandbox is used again.
      await options.ensureCurrent();
      const current = leases.get(session);
      let startedFresh: StartedFresh = 'after-release';
      if (current) {
        if (current.sandbox.isUsable()) return { lease: current, startedFresh: 'no' };
        log.warn({ user: session.userId, sandbox: current.sandbox.id.slice(0, 12), reason: current.sandbox.failureReason() }, 'session sandbox died');
        await releaseLease(session, 'sandbox died');
        startedFresh = 'after-loss';
      }
      // Single flight: concurrent first tool calls of one user share one acquire.
      let pending = leasing.get(session);
      if (pending) return { lease: (await pending).lease, startedFresh: 'no' };
      pending = (async () => {
        // The user's previous sandbox lived on a replica that died: its files are gone (unless saved).
        if (await claimOwnership(session.userId)) startedFresh = 'after-loss';
        let acquired: UserLease;
        try {
          acquired = await pool.acquire();
        } catch (err) {
          await owners.release(session.userId, replicaId).catch(() => undefined);
          throw err;
        }
        // The user's files, back before their first call runs in it.
        return { lease: acquired, restore: await workspaces.restore(session.userId, acquired.sandbox) };
      })().finally(() => leasing.delete(session));
      leasing.set(session, pending);
      const { lease, restore } = await pending;
      if (sessions.get(session.userId) !== session) {
        await lease.release();
        await owners.release(session.userId, replicaId).catch(() => undefined);
        throw session.abort.signal.reason instanceof CancelledError ? session.abort.signal.reason : new CancelledError('user-left');
      }
      leases.set(session, lease);
      return { lease, startedFresh, restore };
    },
    leasedUsers: () => [...leases.keys()].map((s) => s.userId),
    giveUp(userIds) {
      for (const userId of userIds) {
        const session = sessions.get(userId);
        if (session) void releaseLease(session, 'another replica took this sandbox over');
      }
    },
    count: () => sessions.size,
    async closeAll() {
      await Promise.allSettled([...sessions.values()].map((s) => end(s, 'shutdown', 'shutdown')));
    },
  };
  return manager;
}
