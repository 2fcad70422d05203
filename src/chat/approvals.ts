import { SandpoolError } from '../errors.js';

export type ApprovalOutcome = 'approved' | 'denied' | 'timeout' | 'cancelled';

interface Pending {
  userId: string;
  requestId: string;
  callId: string;
  tool: string;
  arguments: Record<string, unknown>;
  startedAtMs: number;
  expiresAtMs: number;
  settle: (outcome: ApprovalOutcome) => void;
}

/**
 * Tool calls waiting for their user's decision. Only the user who owns a call
 * can decide it; anyone else (or a stale id) gets UNKNOWN_CALL and changes nothing.
 */
export interface ApprovalRegistry {
  /** Waits for approve/deny, the timeout, or the signal (cancelled). */
  wait(args: {
    userId: string;
    requestId: string;
    callId: string;
    tool: string;
    arguments: Record<string, unknown>;
    timeoutMs: number;
    signal: AbortSignal;
  }): Promise<ApprovalOutcome>;
  /** Decides a pending call; returns its request id. */
  decide(userId: string, callId: string, approved: boolean): { requestId: string };
  /** The user's calls still waiting, as tool:request payloads (for a tab that connects late). */
  pendingFor(userId: string): Array<{ requestId: string; callId: string; tool: string; arguments: Record<string, unknown>; expiresAtMs: number }>;
  pendingCount(): number;
}

export function createApprovalRegistry(): ApprovalRegistry {
  const pending = new Map<string, Pending>();
  return {
    wait({ userId, requestId, callId, tool, arguments: args, timeoutMs, signal }) {
      return new Promise<ApprovalOutcome>((resolve) => {
        const timer = setTimeout(() => settle('timeout'), timeoutMs);
        const onAbort = (): void => settle('cancelled');
        function settle(outcome: ApprovalOutcome): void {
          if (!pending.delete(callId)) return;
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          resolve(outcome);
        }
        pending.set(callId, { userId, requestId, callId, tool, arguments: args, startedAtMs: Date.now(), expiresAtMs: Date.now() + timeoutMs, settle });
        if (signal.aborted) settle('cancelled');
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
