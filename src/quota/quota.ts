import { SandpoolError, errorMessage, quotaExceeded } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Plan } from '../plans/plans.js';
import { QUOTA_WINDOWS, type QuotaWindow } from '../protocol/errors.js';
import type { QuotaOutcome, QuotaStore } from './quota-store.js';

/** What remains of each window for one more call (null = unlimited): the `quota` field of a message ack. */
export interface QuotaRemaining {
  plan: string;
  remaining: Record<QuotaWindow, number | null>;
}

/** GET /me/usage. */
export interface UsageReport {
  plan: string;
  windows: Record<QuotaWindow, { used: number; limit: number | null; resetsInSeconds: number }>;
}

/** A counted call: given back when it never ran (no sandbox to be had, the sandbox died). */
export interface CountedCall {
  refund(): Promise<void>;
}

/** Hooks for metrics: no per-user label anywhere, plans and windows only. */
export interface QuotaObserver {
  /** A check's cost: its latency (the store's round trip). */
  checked(ms: number): void;
  counted(plan: string): void;
  refused(plan: string, window: QuotaWindow): void;
  /** A call took a window from below 80 % of its limit to 80 % or more. */
  crossedWarning(plan: string, window: QuotaWindow): void;
  /** The store could not be asked (Redis unreachable); `mode` says what happened to the call. */
  storeFailed(mode: QuotaFailMode): void;
}

export const UNOBSERVED_QUOTA: QuotaObserver = {
  checked: () => undefined,
  counted: () => undefined,
  refused: () => undefined,
  crossedWarning: () => undefined,
  storeFailed: () => undefined,
};

/** closed: refuse when usage cannot be checked; open: let the call through uncounted, loudly. */
export type QuotaFailMode = 'closed' | 'open';

/**
 * Plans' limits on tool calls, over a QuotaStore. The one place that counts
 * is the tool runner every executed call goes through (chat/sandbox-tools.ts:
 * chat and MCP alike, once, on the replica that took the request); a message
 * is refused at its ack while a window is already full.
 */
export interface Quota {
  /** Before a message is accepted: refuses with QUOTA_EXCEEDED while a window has no room for one call; else what remains. Undefined when usage is unknown (fail open). */
  admitMessage(userId: string, plan: Plan): Promise<QuotaRemaining | undefined>;
  /** Counts one tool call; refuses with QUOTA_EXCEEDED when it would cross a limit. */
  countCall(userId: string, plan: Plan): Promise<CountedCall>;
  usage(userId: string, plan: Plan): Promise<UsageReport>;
}

const NOTHING_TO_REFUND: CountedCall = { refund: async () => undefined };

/** The share of a window at which a user is counted as approaching the limit. */
export const WARNING_SHARE = 0.8;

export function createQuota(options: { store: QuotaStore; failMode: QuotaFailMode; logger: Logger; observer?: QuotaObserver }): Quota {
  const { store, failMode } = options;
  const observer = options.observer ?? UNOBSERVED_QUOTA;
  const log = options.logger.child({ component: 'Quota' });
  let lastLoudLogAtMs = 0;
  let failuresSinceLog = 0;

  async function ask(userId: string, plan: Plan, count: boolean): Promise<QuotaOutcome | undefined> {
    const started = performance.now();
    try {
      const outcome = await store.check(userId, plan.limits, { count });
      observer.checked(performance.now() - started);
      return outcome;
    } catch (err) {
      observer.storeFailed(failMode);
      if (failMode === 'closed') {
        throw new SandpoolError('INTERNAL', 'your usage cannot be checked right now (the quota store is unreachable); try again shortly', { cause: err, detail: errorMessage(err) });
      }
      // Open: loud, but one line per 10 s, not one per call of every user.
      failuresSinceLog++;
      if (Date.now() - lastLoudLogAtMs >= 10_000) {
        log.error({ err: errorMessage(err), callsLetThrough: failuresSinceLog, plan: plan.name }, 'QUOTA_FAIL_MODE=open: the quota store is unreachable; tool calls are let through UNCOUNTED');
        lastLoudLogAtMs = Date.now();
        failuresSinceLog = 0;
      }
      return undefined;
    }
  }

  function refuse(plan: Plan, outcome: QuotaOutcome): never {
    const refusal = outcome.refusal ?? { window: 'hour' as const, limit: 0, retryAfterMs: 0 };
    observer.refused(plan.name, refusal.window);
    throw quotaExceeded({ plan: plan.name, window: refusal.window, limit: refusal.limit, retryAfterSeconds: Math.max(1, Math.ceil(refusal.retryAfterMs / 1000)) });
  }

  const remainingOf = (plan: Plan, outcome: QuotaOutcome): QuotaRemaining => ({
    plan: plan.name,
    remaining: Object.fromEntries(
      QUOTA_WINDOWS.map((w) => {
        const { used, limit } = outcome.usage[w];
        return [w, limit === null ? null : Math.max(0, limit - used)];
      }),
    ) as Record<QuotaWindow, number | null>,
  });

  return {
    async admitMessage(userId, plan) {
      const outcome = await ask(userId, plan, false);
      if (!outcome) return undefined;
      if (!outcome.admitted) refuse(plan, outcome);
      return remainingOf(plan, outcome);
    },
    async countCall(userId, plan) {
      const outcome = await ask(userId, plan, true);
      if (!outcome) return NOTHING_TO_REFUND;
      if (!outcome.admitted) refuse(plan, outcome);
      observer.counted(plan.name);
      for (const w of QUOTA_WINDOWS) {
        const { used, limit } = outcome.usage[w];
        if (limit === null || limit === 0) continue;
        const threshold = Math.ceil(limit * WARNING_SHARE);
        if (used - 1 < threshold && used >= threshold) observer.crossedWarning(plan.name, w);
      }
      return {
        refund: () =>
          store.refund(userId, outcome.atMs).catch((err: unknown) => log.warn({ user: userId, err: errorMessage(err) }, 'could not give back a call that never ran; it stays counted')),
      };
    },
    async usage(userId, plan) {
      let outcome: QuotaOutcome;
      try {
        outcome = await store.check(userId, plan.limits, { count: false });
      } catch (err) {
        throw new SandpoolError('INTERNAL', 'your usage cannot be read right now (the quota store is unreachable); try again shortly', { cause: err, detail: errorMessage(err) });
      }
      return {
        plan: plan.name,
        windows: Object.fromEntries(
          QUOTA_WINDOWS.map((w) => {
            const { used, limit, resetsInMs } = outcome.usage[w];
            return [w, { used, limit, resetsInSeconds: Math.ceil(resetsInMs / 1000) }];
          }),
        ) as UsageReport['windows'],
      };
    },
  };
}
