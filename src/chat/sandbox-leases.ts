import type { CallToolResult } from '../protocol/mcp-types.js';
import { cancellationOf, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { OwnershipHolder } from '../cluster/heartbeat.js';
import type { WorkspaceChannel } from '../mcp/workspace-channel.js';
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
}

/** Where leases take sandboxes from (the container pool). */
export interface SandboxSource {
  acquire(): Promise<UserLease>;
}

/** A present user's sandbox, ready for a call. */
export interface LeasedSandbox {
  lease: UserLease;
  /** Whether the call gets a fresh sandbox, and why. */
  startedFresh: StartedFresh;
  /** The user's files put back into a fresh sandbox (or why not). */
  restore?: RestoreOutcome;
}

/**
 * The user's own sandbox on this replica: taken from the pool on first use
 * (one acquire for concurrent first calls), with the user's files restored
 * into it and its ownership claimed; replaced when it died; released when the
 * user idles out or leaves, with a last snapshot of their files. The
 * heartbeat renews the ownership of what is leased here (OwnershipHolder).
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
}

export function createSandboxLeases(options: SandboxLeasesOptions): SandboxLeases {
  const { pool, ownership, workspaces } = options;
  const log = options.logger.child({ component: 'SandboxLeases' });
  const held = new Map<Presence, UserLease>();
  const acquiring = new Map<Presence, Promise<{ lease: UserLease; restore: RestoreOutcome }>>();
  /** The largest snapshot of each present user's files, as of their latest call (their plan's workspaceMaxBytes). */
  const snapshotBounds = new WeakMap<Presence, number>();

  /** The user's present (not ended) presence holding a sandbox here. */
  const holderOf = (userId: string): Presence | undefined => [...held.keys()].find((p) => p.userId === userId && !p.ended);

  async function release(presence: Presence, why: string): Promise<void> {
    const lease = held.get(presence);
    held.delete(presence);
    if (!lease) return;
    log.info({ user: presence.userId, sandbox: lease.sandbox.id.slice(0, 12), why }, 'releasing sandbox');
    // A change not saved yet (its save failed) gets one more try before the files go.
    if (lease.sandbox.isUsable()) await workspaces.save(presence.userId, lease.sandbox, snapshotBounds.get(presence));
    workspaces.forget(lease.sandbox);
    await lease.release().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'release failed'));
    await ownership.release(presence.userId);
  }

  return {
    release,
    async releaseEnded(presence, why) {
      // A lease still being acquired is released by its own acquire, which sees the presence ended.
      const pending = acquiring.get(presence);
      if (pending) await pending.then(() => undefined, () => undefined);
      await release(presence, why);
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
        if (await ownership.claim(presence.userId)) startedFresh = 'after-loss';
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
      const { lease, restore } = await pending;
      if (presence.ended) {
        await lease.release();
        await ownership.release(presence.userId);
        throw cancellationOf(presence.signal);
      }
      held.set(presence, lease);
      return { lease, startedFresh, restore };
    },
    async wipe(userId) {
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
        await workspaces.wipe(userId);
      }
    },
    leasedUsers: () => [...held.keys()].map((p) => p.userId),
    giveUp(userIds) {
      for (const userId of userIds) {
        const presence = holderOf(userId);
        if (presence) void release(presence, 'another replica took this sandbox over');
      }
    },
  };
}
