import type { CallToolResult } from '../protocol/mcp-types.js';
import type { Sandbox, SandboxCallOptions } from '../mcp/sandbox.js';

/**
 * What the pool's parts share, below all of them: the container pool composes
 * the lease book and the start scheduler, and they report through the
 * observer, so these types live in neither (no import circle).
 */

/** One user's exclusive hold on a sandbox. Released = the sandbox is destroyed. */
export interface Lease {
  readonly id: string;
  /** The lease's sandbox: another one after a sandbox found dead on first use was replaced. */
  readonly sandbox: Sandbox;
  /** How long acquire() took, in ms. */
  readonly acquireMs: number;
  /** Rejects with SandboxGoneError once the sandbox is gone (it died, or the lease was released). */
  callTool(name: string, args: Record<string, unknown>, options?: SandboxCallOptions): Promise<CallToolResult>;
  /** Destroys the sandbox (a used workspace is never handed to anyone else). Idempotent. */
  release(): Promise<void>;
  /**
   * Ends the lease keeping its sandbox frozen for this user alone (parked:
   * ContainerPool.resume hands it back to them). Resolves false when it could
   * not be parked (parking off, draining, the pause failed, the sandbox died):
   * then it was destroyed, as release() does. Idempotent with release().
   */
  park(userId: string): Promise<boolean>;
}

/** Hooks for metrics; all optional. */
export interface PoolObserver {
  acquired?(ms: number): void;
  created?(ms: number): void;
  createFailed?(err: Error): void;
  destroyed?(): void;
  replaced?(): void;
  /** A parked sandbox was resumed for its user in `ms` (unpause + MCP ping). */
  resumed?(ms: number): void;
  /** A parked sandbox was removed instead of resumed. */
  parkEvicted?(reason: ParkEvictReason): void;
}

/** Why a parked sandbox was removed rather than resumed: 'failed' is a resume that did not work. */
export type ParkEvictReason = 'count' | 'ttl' | 'demand' | 'failed' | 'wipe' | 'shutdown' | 'ownership';
