import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { SandboxGoneError, SandpoolError, errorMessage } from '../errors.js';
import type { ToolRunner } from '../agent/agent-loop.js';
import type { ReplicaBus } from '../cluster/replica-bus.js';
import type { RemoteToolCall, ToolRun } from '../protocol/events.js';
import { OwnedElsewhereError, type Session, type SessionManager } from './sessions.js';

/** The user's sandbox as a place to run tools: here, or on the replica that holds it. */
export interface SandboxTools {
  /** The runner for one request of a session on this replica. */
  runnerFor(session: Session): ToolRunner;
  /** Runs a call another replica routed here (this replica holds the user's sandbox). */
  runRouted(userId: string, call: RemoteToolCall): Promise<ToolRun>;
}

/**
 * The process runtime roots a sandbox at a temp dir, not /workspace: paths are
 * translated both ways so the user and the model always see /workspace.
 */
function mapPaths(workspaceDir: string): { args(a: Record<string, unknown>): Record<string, unknown>; result(r: CallToolResult): CallToolResult } {
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

export function createSandboxTools(options: { sessions: SessionManager; bus: ReplicaBus }): SandboxTools {
  const { sessions, bus } = options;

  /** In the user's sandbox on this replica. A failure inside the sandbox is a result; a dead sandbox is not. */
  async function runHere(session: Session, call: RemoteToolCall): Promise<ToolRun> {
    const { lease, startedFresh } = await sessions.lease(session);
    const paths = mapPaths(lease.sandbox.workspaceDir);
    try {
      const result = await lease.callTool(call.name, paths.args(call.arguments), { timeoutMs: call.timeoutMs });
      return { result: paths.result(result), startedFresh };
    } catch (err) {
      if (err instanceof SandboxGoneError) throw err;
      return { result: { content: [{ type: 'text', text: `Tool call failed: ${errorMessage(err)}` }], isError: true }, startedFresh };
    }
  }

  return {
    runnerFor(session) {
      return {
        async run(name, args, { timeoutMs }) {
          const call = { name, arguments: args, timeoutMs };
          try {
            return await runHere(session, call);
          } catch (err) {
            // One workspace per user: another live replica holds the sandbox, so the call runs there.
            if (err instanceof OwnedElsewhereError) return bus.runTool(err.owner, session.userId, call);
            throw err;
          }
        },
      };
    },
    async runRouted(userId, call) {
      const session = sessions.get(userId) ?? sessions.open(userId);
      // A routed call keeps the session busy, so the idle release waits for it.
      session.running++;
      try {
        return await runHere(session, call);
      } catch (err) {
        if (err instanceof OwnedElsewhereError) {
          throw new SandpoolError('SANDBOX_FAILED', 'your sandbox moved to another replica while this call was routed; send it again');
        }
        throw err;
      } finally {
        session.running--;
        sessions.touch(session);
      }
    },
  };
}
