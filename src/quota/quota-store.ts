import { QUOTA_WINDOWS, type QuotaWindow } from '../protocol/errors.js';

/**
 * Sliding windows as sub-bucket counters (docs/plans-and-quotas.md).
 *
 * Each window keeps one counter per bucket: the hour 60 one-minute buckets,
 * the day 24 one-hour buckets, the month (30 days) 30 one-day buckets. A
 * bucket counts while any part of it lies inside the window ending now, so a
 * call counts for at least the window's length and at most one bucket more
 * (an hour's call for 60-61 minutes, a day's for 24-25 hours, a month's for
 * 30-31 days). Counts are therefore never below the exact sliding count: no
 * window of the plan's length ever holds more calls than the limit. A burst is
 * refused exactly at the limit; the approximation is only in when old calls
 * stop counting. Memory per user: at most 61 + 25 + 31 = 117 counters.
 */
export interface WindowLayout {
  readonly windowMs: number;
  readonly bucketMs: number;
  /** The window's buckets' field prefix (in Redis and in memory alike). */
  readonly tag: string;
}

export const WINDOW_LAYOUT: Readonly<Record<QuotaWindow, WindowLayout>> = {
  hour: { windowMs: 3_600_000, bucketMs: 60_000, tag: 'h' },
  day: { windowMs: 86_400_000, bucketMs: 3_600_000, tag: 'd' },
  month: { windowMs: 30 * 86_400_000, bucketMs: 86_400_000, tag: 'm' },
};

/** A user's counters are forgotten this long after their last call: the month window and one bucket. */
export const QUOTA_TTL_MS = WINDOW_LAYOUT.month.windowMs + WINDOW_LAYOUT.month.bucketMs;

/** Calls per window; null = unlimited (still counted, for /me/usage). */
export type QuotaLimits = Readonly<Record<QuotaWindow, number | null>>;

export interface WindowUsage {
  /** Calls counted in the window now. */
  used: number;
  limit: number | null;
  /** Until the oldest call counted now leaves the window (the count next goes down); 0 when none is counted. */
  resetsInMs: number;
}

export type QuotaUsage = Record<QuotaWindow, WindowUsage>;

export interface QuotaOutcome {
  /** One more call fits every limited window (and, when counting, was counted). */
  admitted: boolean;
  /** When not admitted: the window that holds the call back longest, and until when. */
  refusal?: { window: QuotaWindow; limit: number; retryAfterMs: number };
  /** After the call, when it was counted. */
  usage: QuotaUsage;
  /** The store's time of the check: a refund names it. */
  atMs: number;
}

/**
 * Where tool calls are counted: memory for one replica, Redis for several
 * (one hash per user, updated by one Lua script: atomic across replicas).
 * Both implementations pass test/support/quota-contract.ts.
 */
export interface QuotaStore {
  readonly kind: 'memory' | 'redis';
  /**
   * Whether one more call fits every limited window; with `count`, counts it
   * when it does, in the same atomic step. Without, only looks.
   */
  check(userId: string, limits: QuotaLimits, options: { count: boolean }): Promise<QuotaOutcome>;
  /** Takes back one call counted at `countedAtMs` (it never ran); buckets that already left are untouched. */
  refund(userId: string, countedAtMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Stores take the time from here, so tests can move it (a window's edge without waiting an hour). */
export type Clock = () => number;

/** One bucket: its window, its index (start = index x bucketMs) and its count. */
export interface Bucket {
  window: QuotaWindow;
  index: number;
  count: number;
}

export const fieldOf = (window: QuotaWindow, index: number): string => `${WINDOW_LAYOUT[window].tag}${index}`;

export function parseField(field: string): { window: QuotaWindow; index: number } | undefined {
  const window = QUOTA_WINDOWS.find((w) => WINDOW_LAYOUT[w].tag === field[0]);
  const index = Number(field.slice(1));
  return window && Number.isInteger(index) && field.length > 1 ? { window, index } : undefined;
}

/** Whether a bucket still overlaps its window ending at `nowMs`. */
export function bucketCounts(window: QuotaWindow, index: number, nowMs: number): boolean {
  const { windowMs, bucketMs } = WINDOW_LAYOUT[window];
  return (index + 1) * bucketMs > nowMs - windowMs;
}

/** When a bucket stops counting. */
export function bucketLeavesAtMs(window: QuotaWindow, index: number): number {
  const { windowMs, bucketMs } = WINDOW_LAYOUT[window];
  return (index + 1) * bucketMs + windowMs;
}

/**
 * The decision over a user's live buckets, the same for both stores (the
 * Lua script in redis-quota-store.ts does exactly this, inside Redis).
 */
export function decide(buckets: readonly Bucket[], limits: QuotaLimits, nowMs: number, count: boolean): QuotaOutcome & { counted: Bucket[] } {
  const used = { hour: 0, day: 0, month: 0 };
  const oldest: Record<QuotaWindow, number | undefined> = { hour: undefined, day: undefined, month: undefined };
  for (const b of buckets) {
    used[b.window] += b.count;
    if (b.count > 0 && (oldest[b.window] === undefined || b.index < (oldest[b.window] ?? 0))) oldest[b.window] = b.index;
  }
  let refusal: QuotaOutcome['refusal'];
  for (const window of QUOTA_WINDOWS) {
    const limit = limits[window];
    if (limit === null || used[window] + 1 <= limit) continue;
    // Calls that must leave before one more fits, oldest first.
    const need = used[window] + 1 - limit;
    let seen = 0;
    let retryAfterMs = WINDOW_LAYOUT[window].windowMs;
    for (const b of [...buckets].filter((x) => x.window === window).sort((a, c) => a.index - c.index)) {
      seen += b.count;
      if (seen >= need) {
        retryAfterMs = bucketLeavesAtMs(window, b.index) - nowMs;
        break;
      }
    }
    if (!refusal || retryAfterMs > refusal.retryAfterMs) refusal = { window, limit, retryAfterMs };
  }
  const counted: Bucket[] = [];
  if (!refusal && count) {
    for (const window of QUOTA_WINDOWS) {
      const index = Math.floor(nowMs / WINDOW_LAYOUT[window].bucketMs);
      counted.push({ window, index, count: 1 });
      used[window] += 1;
      if (oldest[window] === undefined || index < (oldest[window] ?? 0)) oldest[window] = index;
    }
  }
  const usageOf = (window: QuotaWindow): WindowUsage => {
    const first = oldest[window];
    return { used: used[window], limit: limits[window], resetsInMs: first === undefined ? 0 : Math.max(0, bucketLeavesAtMs(window, first) - nowMs) };
  };
  return {
    admitted: refusal === undefined,
    ...(refusal ? { refusal } : {}),
    atMs: nowMs,
    usage: { hour: usageOf('hour'), day: usageOf('day'), month: usageOf('month') },
    counted,
  };
}
