import { CancelledError, SandpoolError, type CancelReason } from '../errors.js';
import type { ChatSettings } from './settings.js';

/**
 * One user's presence on this replica: shared by all of the user's sockets
 * (tabs) and MCP sessions here. It holds the user's sandbox lease
 * (sandbox-leases.ts) from the first tool call on; the conversation itself
 * lives in the shared ConversationStore. MAX_SESSIONS caps presences.
 */
export interface Presence {
  readonly userId: string;
  /** Aborted (with a CancelledError) when the presence ends: cancels the user's work running here. */
  readonly signal: AbortSignal;
  /** True once it ended (the user left, it idled out, shutdown): nothing new runs in it. */
  readonly ended: boolean;
  /**
   * Work of this user starts here (a request, a tool call): the idle release
   * waits for it. Returns the end of that work (call it once), which counts
   * as activity.
   */
  begin(): () => void;
  /** Marks activity: postpones the idle release. */
  touch(): void;
}

/** What a presence does with the user's sandbox when it idles out or ends (the sandbox leases). */
export interface PresenceSandbox {
  /** The user's sandbox here goes (idle: the presence stays while something holds it); `park`: kept frozen for the user's return. */
  release(presence: Presence, why: string, park?: boolean): Promise<void>;
  /** The presence ended: once a lease being acquired for it has settled, its sandbox goes (parked when `park`). */
  releaseEnded(presence: Presence, why: string, park?: boolean): Promise<void>;
  /** A socket or MCP session of the user opened here: a sandbox parked for them may start thawing before their first call. */
  returning?(presence: Presence): void;
}

/** Who is here: users' presences on this replica, held by their sockets and MCP sessions. */
export interface Presences {
  /** Whether this replica can take the user: present here already, or below MAX_SESSIONS. An unknown user counts as new. */
  hasRoomFor(userId: string | undefined): boolean;
  /** Throws TOO_MANY_REQUESTS when this user would need a presence beyond MAX_SESSIONS. */
  checkRoomFor(userId: string): void;
  /** The user's presence here, created on first use (refused with TOO_MANY_REQUESTS beyond MAX_SESSIONS). */
  open(userId: string): Presence;
  get(userId: string): Presence | undefined;
  /** A socket or MCP session of the user opened here: the presence stays while any holds it. */
  attach(userId: string): Presence;
  /**
   * One let go. When the last one has gone, the presence ends after `graceMs`
   * (default SESSION_DISCONNECT_GRACE_MS; a reconnect within it keeps
   * everything): its work is cancelled and its sandbox released.
   */
  detach(userId: string, graceMs?: number): void;
  /** Ends the presence now if nothing holds it and nothing runs (another replica's MCP session ended). */
  releaseIfUnheld(userId: string): Promise<void>;
  count(): number;
  /** Ends every presence (shutdown): their work is cancelled, their sandboxes released. */
  closeAll(): Promise<void>;
}

/** Options of createPresences. */
export interface PresencesOptions {
  settings: Pick<ChatSettings, 'maxSessions' | 'sessionIdleTimeoutMs' | 'disconnectGraceMs'>;
  sandbox: PresenceSandbox;
}

/** A presence with what only this module changes. */
interface Entry {
  readonly presence: Presence;
  readonly abort: AbortController;
  ended: boolean;
  /** What holds it open: the user's sockets and MCP sessions here. */
  holders: number;
  /** Work of the user running here (requests, routed and direct tool calls). */
  running: number;
  idleTimer: NodeJS.Timeout | undefined;
  graceTimer: NodeJS.Timeout | undefined;
}

export function createPresences(options: PresencesOptions): Presences {
  const { settings, sandbox } = options;
  const present = new Map<string, Entry>();

  function armIdle(entry: Entry): void {
    clearTimeout(entry.idleTimer);
    if (entry.ended) return;
    entry.idleTimer = setTimeout(() => {
      // Busy is not idle: look again later (the work's own end re-arms this too).
      if (entry.running > 0) return armIdle(entry);
      // Idle: the sandbox goes; the presence stays while a socket is open.
      // Parked, not destroyed: the user who idled out or left is likely to come back.
      if (entry.holders > 0) void sandbox.release(entry.presence, 'idle timeout', true);
      else void end(entry, 'idle timeout', 'user-left');
    }, settings.sessionIdleTimeoutMs);
    entry.idleTimer.unref();
  }

  async function end(entry: Entry, why: string, cancel: CancelReason): Promise<void> {
    if (entry.ended) return;
    entry.ended = true;
    present.delete(entry.presence.userId);
    clearTimeout(entry.idleTimer);
    clearTimeout(entry.graceTimer);
    entry.abort.abort(new CancelledError(cancel));
    // A user who left may come back (parked); a shutdown takes everything down.
    await sandbox.releaseEnded(entry.presence, why, cancel === 'user-left');
  }

  function create(userId: string): Entry {
    const abort = new AbortController();
    const entry: Entry = {
      presence: {
        userId,
        signal: abort.signal,
        get ended() {
          return entry.ended;
        },
        begin() {
          entry.running++;
          let done = false;
          return () => {
            if (done) return;
            done = true;
            entry.running--;
            armIdle(entry);
          };
        },
        touch: () => armIdle(entry),
      },
      abort,
      ended: false,
      holders: 0,
      running: 0,
      idleTimer: undefined,
      graceTimer: undefined,
    };
    return entry;
  }

  /** The one capacity rule: a user present here always has room; a new one only below MAX_SESSIONS. */
  const hasRoomFor = (userId: string | undefined): boolean => (userId !== undefined && present.has(userId)) || present.size < settings.maxSessions;

  function checkRoomFor(userId: string): void {
    if (!hasRoomFor(userId)) throw new SandpoolError('TOO_MANY_REQUESTS', `this replica serves its maximum of ${settings.maxSessions} sessions; try again later`);
  }

  function openEntry(userId: string): Entry {
    const existing = present.get(userId);
    if (existing) return existing;
    checkRoomFor(userId);
    const entry = create(userId);
    present.set(userId, entry);
    armIdle(entry);
    return entry;
  }

  return {
    hasRoomFor,
    checkRoomFor,
    open: (userId) => openEntry(userId).presence,
    get: (userId) => present.get(userId)?.presence,
    attach(userId) {
      const entry = openEntry(userId);
      entry.holders++;
      clearTimeout(entry.graceTimer);
      entry.graceTimer = undefined;
      sandbox.returning?.(entry.presence);
      return entry.presence;
    },
    detach(userId, graceMs = settings.disconnectGraceMs) {
      const entry = present.get(userId);
      if (!entry) return;
      entry.holders = Math.max(0, entry.holders - 1);
      if (entry.holders > 0) return;
      // Nobody left here to approve or read: after the grace period, cancel and release.
      clearTimeout(entry.graceTimer);
      entry.graceTimer = setTimeout(() => void end(entry, 'user left', 'user-left'), graceMs);
      entry.graceTimer.unref();
    },
    async releaseIfUnheld(userId) {
      const entry = present.get(userId);
      if (entry && entry.holders === 0 && entry.running === 0) await end(entry, 'its last MCP session ended elsewhere', 'user-left');
    },
    count: () => present.size,
    async closeAll() {
      await Promise.allSettled([...present.values()].map((entry) => end(entry, 'shutdown', 'shutdown')));
    },
  };
}
