import type { CallToolResult } from '../protocol/mcp-types.js';
import { SandboxGoneError, SandpoolError, errorMessage } from '../errors.js';
import type { ToolRunner } from '../agent/agent-loop.js';
import type { ReplicaBus } from '../cluster/replica-bus.js';
import { callOwnerUnlessSilent, type SilentOwnerWait } from '../cluster/silent-owner.js';
import type { Plan, PlanCatalog } from '../plans/plans.js';
import type { Quota } from '../quota/quota.js';
import type { RemoteToolCall, ToolNotice, ToolRun } from '../protocol/events.js';
import { saveNotice, type Workspaces } from '../workspace/workspaces.js';
import { OwnedElsewhereError, type Ownership } from './ownership.js';
import type { Presence, Presences } from './presence.js';
import type { SandboxLeases } from './sandbox-leases.js';

/** The user's sandbox as a place to run tools: here, or on the replica that holds it. */
export interface SandboxTools {
  /**
   * The runner for one request (or one MCP call) of a user present on this
   * replica. Every call it runs counts once against the plan's quota, here:
   * chat and MCP calls both come through it, and a call it routes to the
   * replica holding the sandbox is not counted again there (runRouted).
   */
  runnerFor(presence: Presence, plan: Plan): ToolRunner;
  /** Runs a call another replica routed here (this replica holds the user's sandbox). */
  runRouted(userId: string, call: RemoteToolCall, onNotice?: (notice: ToolNotice) => void): Promise<ToolRun>;
}

/**
 * The process runtime roots a sandbox at a temp dir, not /workspace: paths are
 * translated both ways so the user and the model always see /workspace.
 */
export function mapPaths(workspaceDir: string): { args(a: Record<string, unknown>): Record<string, unknown>; result(r: CallToolResult): CallToolResult } {
  if (workspaceDir === '/workspace') return { args: (a) => a, result: (r) => r };
  const toSandbox = (v: unknown): unknown => {
    if (typeof v === 'string') return v === '/workspace' || v.startsWith('/workspace/') ? workspaceDir + v.slice('/workspace'.length) : v;
    if (Array.isArray(v)) return v.map(toSandbox);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toSandbox(x)]));
    return v;
  };
  const fromSandbox = (t: string): string => t.split(workspaceDir).join('/workspace');
  return {
    args: (a) => toSandbox(a) as Record<string, unknown>,
    result: (r) => ({ ...r, content: r.content.map((c) => (c.type === 'text' ? { ...c, text: fromSandbox(c.text) } : c)) }),
  };
}

export function createSandboxTools(options: {
  presences: Pick<Presences, 'open'>;
  leases: Pick<SandboxLeases, 'lease'>;
  bus: ReplicaBus;
  /** Who holds the user's sandbox now, while a routed call's silent owner is waited out. */
  ownership: Pick<Ownership, 'liveOwnerElsewhere'>;
  /** As the chat service's: a routed call whose owner gives no answer waits for its heartbeat to lapse. */
  silentOwner: SilentOwnerWait;
  workspaces: Workspaces;
  quota: Quota;
  /** To read a routed call's plan (its snapshot size). */
  plans: PlanCatalog;
  /** Whether a tool leaves the files as they were (the image's readOnlyHint): no snapshot after it. */
  isReadOnly(tool: string): boolean;
}): SandboxTools {
  const { presences, leases, bus, workspaces } = options;

  /** In the user's sandbox on this replica. A failure inside the sandbox is a result; a dead sandbox is not. */
  async function runHere(presence: Presence, call: RemoteToolCall, onNotice: ((notice: ToolNotice) => void) | undefined): Promise<ToolRun> {
    // The caller's plan bounds the user's snapshots, after this call and when the sandbox goes.
    const workspaceMaxBytes = options.plans.resolve(call.plan).workspaceMaxBytes;
    const { lease, startedFresh, restore } = await leases.lease(presence, { workspaceMaxBytes });
    const paths = mapPaths(lease.sandbox.workspaceDir);
    const restoredNotice = restore?.kind === 'failed' ? `(Your saved files could not be restored (${restore.reason}), so this ran in a fresh, empty workspace.)` : undefined;
    const base = { startedFresh, ...(restore?.kind === 'restored' ? { restored: true } : {}) };
    let result: CallToolResult;
    try {
      result = paths.result(await lease.callTool(call.name, paths.args(call.arguments), { timeoutMs: call.timeoutMs, ...(onNotice ? { onNotice } : {}) }));
    } catch (err) {
      if (err instanceof SandboxGoneError) throw err;
      result = { content: [{ type: 'text', text: `Tool call failed: ${errorMessage(err)}` }], isError: true };
    }
    // Saved before the result goes back: once the user reads it, the change survives this sandbox.
    let saveNote: string | undefined;
    if (!options.isReadOnly(call.name)) {
      workspaces.markChanged(lease.sandbox);
      saveNote = saveNotice(await workspaces.save(presence.userId, lease.sandbox, workspaceMaxBytes));
    }
    const notice = [restoredNotice, saveNote].filter(Boolean).join('\n');
    return { result, ...base, ...(notice ? { notice } : {}) };
  }

  return {
    runnerFor(presence, plan) {
      return {
        async run(name, args, { timeoutMs, onNotice }) {
          // Refused here (QUOTA_EXCEEDED) before the sandbox is touched.
          const counted = await options.quota.countCall(presence.userId, plan);
          const call = { name, arguments: args, timeoutMs, plan: plan.name };
          try {
            try {
              return await runHere(presence, call, onNotice);
            } catch (err) {
              if (!(err instanceof OwnedElsewhereError)) throw err;
              // One workspace per user: another live replica holds the sandbox, so the call runs there; if that
              // replica died, here once its claim lapses (the user's files from the snapshot).
              const { userId } = presence;
              const routed = await callOwnerUnlessSilent(err.owner, (target) => bus.runTool(target, userId, call, onNotice), () => options.ownership.liveOwnerElsewhere(userId), options.silentOwner);
              return routed.owner !== undefined ? routed.answer : await runHere(presence, call, onNotice);
            }
          } catch (err) {
            // The call did not run (no sandbox to be had, the sandbox or its replica gone): it is given back.
            await counted.refund();
            throw err;
          }
        },
      };
    },
    async runRouted(userId, call, onNotice) {
      const presence = presences.open(userId);
      // A routed call keeps the presence busy, so the idle release waits for it.
      const done = presence.begin();
      try {
        return await runHere(presence, call, onNotice);
      } catch (err) {
        if (err instanceof OwnedElsewhereError) {
          throw new SandpoolError('SANDBOX_FAILED', 'your sandbox moved to another replica while this call was routed; send it again');
        }
        throw err;
      } finally {
        done();
      }
    },
  };
}
