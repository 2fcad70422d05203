import { SandpoolError, cancellationOf } from '../errors.js';
import type { ApprovalVerdict, PendingToolCall, ToolRequest } from '../protocol/events.js';

interface Pending extends PendingToolCall {
  userId: string;
  settle: (verdict: ApprovalVerdict) => void;
}

/**
 * Tool calls waiting for their user's decision. Only the user who owns a call
 * can decide it; anyone else (or a stale id) gets UNKNOWN_CALL and changes nothing.
 */
export interface ApprovalRegistry {
  /** Waits for approve/deny or the timeout; rejects with the signal's CancelledError when it aborts. */
  wait(args: ToolRequest & { userId: string; timeoutMs: number; signal: AbortSignal }): Promise<ApprovalVerdict>;
  /** Decides a pending call; returns its request id. */
  decide(userId: string, callId: string, approved: boolean): { requestId: string };
  /** The user's calls still waiting (for a tab that connects late). */
  pendingFor(userId: string): PendingToolCall[];
  pendingCount(): number;
}

export function createApprovalRegistry(): ApprovalRegistry {
  const pending = new Map<string, Pending>();
  return {
    wait({ userId, requestId, callId, tool, arguments: args, timeoutMs, signal }) {
      return new Promise<ApprovalVerdict>((resolve, reject) => {
        const timer = setTimeout(() => settle('timeout'), timeoutMs);
        const onAbort = (): void => {
          if (!pending.delete(callId)) return;
          clearTimeout(timer);
          reject(cancellationOf(signal));
        };
        function settle(verdict: ApprovalVerdict): void {
          if (!pending.delete(callId)) return;
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          resolve(verdict);
        }
        pending.set(callId, { userId, requestId, callId, tool, arguments: args, expiresAtMs: Date.now() + timeoutMs, settle });
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      });
    },
    decide(userId, callId, approved) {
      const entry = pending.get(callId);
      // Same answer for "no such call" and "not yours": ids of other users' calls must not leak.
      if (!entry || entry.userId !== userId) {
        throw new SandpoolError('UNKNOWN_CALL', `no pending tool call ${JSON.stringify(callId)} for this user`);
      }
      entry.settle(approved ? 'approved' : 'denied');
      return { requestId: entry.requestId };
    },
    pendingFor(userId) {
      return [...pending.values()]
        .filter((p) => p.userId === userId)
        .map((p) => ({ requestId: p.requestId, callId: p.callId, tool: p.tool, arguments: p.arguments, expiresAtMs: p.expiresAtMs }));
    },
    pendingCount() {
      return pending.size;
    },
  };
}
