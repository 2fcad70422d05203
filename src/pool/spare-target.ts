/** Options of createSpareTarget. */
export interface SpareTargetOptions {
  /** Never fewer spares than this (POOL_MIN_SIZE). */
  floor: number;
  /** Never more than this (POOL_MAX_SIZE and the spares' memory budget). */
  ceiling: number;
  /** The arrival rate followed is the peak seen within this window: a burst after a quiet spell finds the spares of the last busy one. */
  windowMs: number;
  /** Arrivals are averaged over this long before taking the peak, so one lucky second does not count as a rate. */
  averagingMs: number;
  /** Spares kept per sandbox needed during one start (2: twice the arrivals one start takes). */
  headroom: number;
  /** A start's duration before any start was measured. */
  defaultStartMs: number;
  /** Added to every start, measured or default: a spare handed out is replaced only after this (POOL_REFILL_DELAY_MS). Default 0. */
  refillDelayMs?: number;
  now?: () => number;
}

/**
 * How many warm spares to keep: enough for the arrivals that come while one
 * sandbox starts (Little's law: arrivals/s × start seconds), times the
 * headroom, at least the floor and at most the ceiling.
 */
export interface SpareTarget {
  /** An acquire arrived (a user wants a sandbox). */
  recordArrival(): void;
  /** Peak arrivals per second within the window (averaged over averagingMs). */
  arrivalRate(): number;
  /** Spares to keep now, given how long a start takes lately (ms; null when unknown). */
  target(startMs: number | null): number;
}

export function createSpareTarget(options: SpareTargetOptions): SpareTarget {
  const now = options.now ?? Date.now;
  const bucketMs = 1_000;
  const buckets = Math.max(1, Math.ceil(options.windowMs / bucketMs));
  const perAverage = Math.max(1, Math.round(options.averagingMs / bucketMs));
  // Arrivals per second of the last `buckets` seconds, a ring indexed by the second.
  const counts = new Array<number>(buckets).fill(0);
  let lastSecond = Math.floor(now() / bucketMs);

  /** Zeroes the seconds that passed without an arrival since the last look. */
  function advance(): number {
    const second = Math.floor(now() / bucketMs);
    for (let s = Math.max(lastSecond + 1, second - buckets + 1); s <= second; s++) counts[s % buckets] = 0;
    lastSecond = Math.max(lastSecond, second);
    return second;
  }

  function arrivalRate(): number {
    const second = advance();
    // Averages ending at every second of the window; the current second counts as far as it went.
    let peak = 0;
    let sum = 0;
    for (let age = buckets - 1; age >= 0; age--) {
      sum += counts[(second - age) % buckets] ?? 0;
      if (age + perAverage <= buckets - 1) sum -= counts[(second - age - perAverage) % buckets] ?? 0;
      if (age <= buckets - perAverage) peak = Math.max(peak, sum / perAverage);
    }
    return peak;
  }

  return {
    recordArrival() {
      const second = advance();
      counts[second % buckets] = (counts[second % buckets] ?? 0) + 1;
    },
    arrivalRate,
    target(startMs) {
      const startSeconds = ((startMs ?? options.defaultStartMs) + (options.refillDelayMs ?? 0)) / 1000;
      // Rounded, not ceiled: one user a minute must not keep a spare the floor (POOL_MIN_SIZE) did not ask for.
      const wanted = Math.round(arrivalRate() * startSeconds * options.headroom);
      // The operator's floor holds even above the memory budget; demand does not.
      return Math.max(options.floor, Math.min(options.ceiling, wanted));
    },
  };
}
