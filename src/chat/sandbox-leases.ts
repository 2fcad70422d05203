import type { CallToolResult } from '../protocol/mcp-types.js';
import { cancellationOf, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { OwnershipHolder } from '../cluster/heartbeat.js';
import type { WorkspaceChannel } from '../mcp/workspace-channel.js';
import type { ParkEvictReason } from '../pool/types.js';
import type { StartedFresh, ToolNotice } from '../protocol/events.js';
import type { RestoreOutcome, Workspaces } from '../workspace/workspaces.js';
import type { Ownership } from './ownership.js';
import type { Presence, PresenceSandbox } from './presence.js';

/** A user's hold on a sandbox, as leases use it (the pool's Lease is one). */
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
  callTool(name: string, args: Record<string, unknown>, options?: { timeoutMs?: number; onNotice?: (notice: ToolNotice) => void }): Promise<CallToolResult>;
  /** Destroys the sandbox. */
  release(): Promise<void>;
  /** Ends the lease keeping the sandbox frozen for this user; false when it could not, and it was destroyed instead. */
  park(userId: string): Promise<boolean>;
}

/** Where leases take sandboxes from (the container pool). */
export interface SandboxSource {
  acquire(): Promise<UserLease>;
  /** The user's parked sandbox, resumed; undefined when none is parked here or it did not come back (it was removed). */
  resume(userId: string): Promise<UserLease | undefined>;
  /** Removes the user's parked sandbox; false when none is parked here. */
  evictParked(userId: string, reason: 'wipe' | 'ownership'): boolean;
  /** Users with a sandbox parked here: their ownership is renewed as if leased. */
  parkedUsers(): string[];
  /** Told when a parked sandbox goes without its user coming back. */
  onParkedEvicted(listener: (userId: string, reason: ParkEvictReason) => void): void;
}

/** A present user's sandbox, ready for a call. */
export interface LeasedSandbox {
  lease: UserLease;
  /** Whether the call gets a fresh sandbox, and why. */
  startedFresh: StartedFresh;
  /** The user's files put back into a fresh sandbox (or why not). */
  restore?: RestoreOutcome;
  /** The user's own parked sandbox came back (files and processes as they were). */
  resumed?: boolean;
}

/**
 * The user's own sandbox on this replica: taken from the pool on first use
 * (one acquire for concurrent first calls), with the user's files restored
 * into it and its ownership claimed; replaced when it died. When the user
 * idles out or leaves it is parked (frozen for them, after a last snapshot
 * of their files) and their next lease here resumes it; a resume that fails
 * falls back to a fresh sandbox with the snapshot restored. The ownership of
 * a parked sandbox stays: the user's calls on any replica are routed here. The
 * heartbeat renews the ownership of what is leased or parked here
 * (OwnershipHolder).
 */
export interface SandboxLeases extends PresenceSandbox, OwnershipHolder {
  /**
   * The user's sandbox, acquired on first use and kept. Rejects with
   * OwnedElsewhereError when another live replica holds it.
   * `workspaceMaxBytes` (the caller's plan's) bounds the last snapshot taken
   * when the sandbox goes: the latest call's plan wins (WORKSPACE_MAX_BYTES
   * before any).
   */
  lease(presence: Presence, options?: { workspaceMaxBytes?: number }): Promise<LeasedSandbox>;
  /** The user wiped their workspace: their sandbox here goes without a last snapshot, and their snapshot with it. */
  wipe(userId: string): Promise<void>;
}

/** Options of createSandboxLeases. */
export interface SandboxLeasesOptions {
  pool: SandboxSource;
  ownership: Ownership;
  /** Resolves once this replica's own heartbeat is current (re-validating ownership after a lapse). */
  ensureCurrent: () => Promise<void>;
  /** The users' files across sandboxes: restored into a fresh one, saved when one goes. */
  workspaces: Workspaces;
  logger: Logger;
  /** A user came back to kept work (metrics: the parking hit ratio). */
  observer?: { returningUser(how: 'resumed' | 'restored'): void };
}

export function createSandboxLeases(options: SandboxLeasesOptions): SandboxLeases {
  const { pool, ownership, workspaces } = options;
  const log = options.logger.child({ component: 'SandboxLeases' });
  const held = new Map<Presence, UserLease>();
  const acquiring = new Map<Presence, Promise<{ lease: UserLease; restore?: RestoreOutcome; resumed?: boolean }>>();
  /** The largest snapshot of each present user's files, as of their latest call (their plan's workspaceMaxBytes). */
  const snapshotBounds = new WeakMap<Presence, number>();

  /** The user's present (not ended) presence holding a sandbox here. */
  const holderOf = (userId: string): Presence | undefined => [...held.keys()].find((p) => p.userId === userId && !p.ended);
  /** Sandboxes of a user being saved and parked or released: the user's next lease waits for it (it may resume what is being parked). */
  const leaving = new Map<string, Promise<void>>();
  /** Wipes in progress: a lease that starts meanwhile waits, so it neither resumes nor restores what is being wiped. */
  const wiping = new Map<string, Promise<void>>();
  const busyWith = (userId: string): boolean => holderOf(userId) !== undefined || [...acquiring.keys()].some((p) => p.userId === userId);

  // A parked sandbox removed behind its user's back (count, ttl, demand, shutdown) takes its claim along:
  // their next call may then start anywhere. Not when the user is being served here again, nor when another replica took the claim.
  pool.onParkedEvicted((userId, reason) => {
    // Nor while this user's sandbox is being parked here (an older one of theirs made way for it).
    if (reason === 'ownership' || busyWith(userId) || leaving.has(userId)) return;
    void ownership.release(userId);
  });

  function release(presence: Presence, why: string, park = false): Promise<void> {
    const lease = held.get(presence);
    held.delete(presence);
    if (!lease) return Promise.resolve();
    const { userId } = presence;
    const done = letGo(userId, lease, why, park, snapshotBounds.get(presence)).finally(() => {
      if (leaving.get(userId) === done) leaving.delete(userId);
    });
    leaving.set(userId, done);
    return done;
  }

  async function letGo(userId: string, lease: UserLease, why: string, park: boolean, maxBytes: number | undefined): Promise<void> {
    log.info({ user: userId, sandbox: lease.sandbox.id.slice(0, 12), why }, park ? 'parking sandbox' : 'releasing sandbox');
    // A change not saved yet (its save failed) gets one more try: a parked sandbox may be evicted, and a released one goes.
    if (lease.sandbox.isUsable()) await workspaces.save(userId, lease.sandbox, maxBytes);
    workspaces.forget(lease.sandbox);
    if (park) {
      const kept = await lease.park(userId).catch((err: unknown) => {
        log.warn({ err: errorMessage(err) }, 'park failed');
        return false;
      });
      // The claim stays with the parked sandbox: the user's next call anywhere is routed here.
      if (kept) return;
    } else {
      await lease.release().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'release failed'));
    }
    // Unless the user is back already (a new lease of theirs claimed it meanwhile).
    if (!busyWith(userId)) await ownership.release(userId);
  }

  async function wipeNow(userId: string): Promise<void> {
    // A sandbox of theirs on its way in (a resume, an acquire) or out (being parked) settles first: the wipe then finds it.
    await Promise.allSettled([...[...acquiring].filter(([p]) => p.userId === userId).map(([, pending]) => pending), leaving.get(userId)]);
    const presence = holderOf(userId);
    const lease = presence ? held.get(presence) : undefined;
    if (presence && lease) {
      held.delete(presence);
      await workspaces.wipe(userId, lease.sandbox);
      workspaces.forget(lease.sandbox);
      log.info({ user: userId, sandbox: lease.sandbox.id.slice(0, 12) }, 'wiping the workspace: releasing its sandbox');
      await lease.release().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'release failed'));
      await ownership.release(userId);
    } else {
      // A parked sandbox goes without a last snapshot; its removal drops the claim.
      if (pool.evictParked(userId, 'wipe')) log.info({ user: userId }, 'wiping the workspace: removing its parked sandbox');
      await workspaces.wipe(userId);
    }
  }

  const leases: SandboxLeases = {
    release,
    returning(presence) {
      // The unpause (tens of ms on the engine) overlaps the user typing: their first call finds it thawed, or joins this lease.
      if (held.has(presence) || acquiring.has(presence) || !pool.parkedUsers().includes(presence.userId)) return;
      void leases.lease(presence).catch((err: unknown) => log.debug({ user: presence.userId, err: errorMessage(err) }, 'no early resume'));
    },
    async releaseEnded(presence, why, park) {
      // A lease still being acquired is released by its own acquire, which sees the presence ended.
      const pending = acquiring.get(presence);
      if (pending) await pending.then(() => undefined, () => undefined);
      await release(presence, why, park);
    },
    async lease(presence, leaseOptions) {
      if (leaseOptions?.workspaceMaxBytes !== undefined) snapshotBounds.set(presence, leaseOptions.workspaceMaxBytes);
      // After a stall, ownership is re-validated before any sandbox is used again.
      await options.ensureCurrent();
      const current = held.get(presence);
      let startedFresh: StartedFresh = 'after-release';
      if (current) {
        if (current.sandbox.isUsable()) return { lease: current, startedFresh: 'no' };
        log.warn({ user: presence.userId, sandbox: current.sandbox.id.slice(0, 12), reason: current.sandbox.failureReason() }, 'the user\'s sandbox died');
        await release(presence, 'sandbox died');
        startedFresh = 'after-loss';
      }
      // Single flight: concurrent first tool calls of one user share one acquire.
      let pending = acquiring.get(presence);
      if (pending) return { lease: (await pending).lease, startedFresh: 'no' };
      pending = (async () => {
        // The user's previous sandbox lived on a replica that died: its files are gone (unless saved).
        // Their sandbox here may be on its way to being parked (it is theirs to resume once it is), or being wiped.
        // Both read now, at once: a wipe that began earlier is waited for, and a later one waits for this lease.
        await Promise.allSettled([leaving.get(presence.userId), wiping.get(presence.userId)]);
        if (await ownership.claim(presence.userId)) startedFresh = 'after-loss';
        // The user's own sandbox, parked here when they left: thawed, with their files and processes.
        const resumed = await pool.resume(presence.userId);
        if (resumed) return { lease: resumed, resumed: true };
        let acquired: UserLease;
        try {
          acquired = await pool.acquire();
        } catch (err) {
          await ownership.release(presence.userId);
          throw err;
        }
        // The user's files, back before their first call runs in it.
        return { lease: acquired, restore: await workspaces.restore(presence.userId, acquired.sandbox) };
      })().finally(() => acquiring.delete(presence));
      acquiring.set(presence, pending);
      const { lease, restore, resumed } = await pending;
      if (presence.ended) {
        await lease.release();
        await ownership.release(presence.userId);
        throw cancellationOf(presence.signal);
      }
      held.set(presence, lease);
      if (resumed) {
        options.observer?.returningUser('resumed');
        return { lease, startedFresh: 'no', resumed: true };
      }
      if (restore?.kind === 'restored') options.observer?.returningUser('restored');
      return { lease, startedFresh, restore };
    },
    wipe(userId) {
      const done = wipeNow(userId).finally(() => {
        if (wiping.get(userId) === done) wiping.delete(userId);
      });
      wiping.set(userId, done);
      return done;
    },
    leasedUsers: () => [...new Set([...[...held.keys()].map((p) => p.userId), ...pool.parkedUsers()])],
    giveUp(userIds) {
      for (const userId of userIds) {
        const presence = holderOf(userId);
        if (presence) void release(presence, 'another replica took this sandbox over');
        else pool.evictParked(userId, 'ownership');
      }
    },
  };
  return leases;
}
