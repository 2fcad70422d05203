/** Small async helpers shared by the runtime, pool and shutdown code. */

export class TimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimeoutError';
  }
}

/**
 * Rejects with TimeoutError after `ms`. The underlying work is not cancelled:
 * pass `onLateResult` to clean up a value that arrives after the deadline
 * (a sandbox that finished starting after its caller gave up must not leak).
 */
export function withTimeout<T>(work: Promise<T>, ms: number, what: string, onLateResult?: (value: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      reject(new TimeoutError(`${what} timed out after ${ms} ms`));
    }, ms);
    work.then(
      (value) => {
        if (done) {
          onLateResult?.(value);
          return;
        }
        done = true;
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Percentiles over a bounded window of recent samples. */
export class LatencyWindow {
  private readonly samples: number[] = [];
  private next = 0;

  constructor(private readonly capacity = 1024) {}

  record(ms: number): void {
    if (this.samples.length < this.capacity) this.samples.push(ms);
    else {
      this.samples[this.next] = ms;
      this.next = (this.next + 1) % this.capacity;
    }
  }

  percentiles(): Percentiles {
    return percentilesOf(this.samples);
  }
}

export interface Percentiles {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** p50 / p95 / p99 of samples in any order (null for none), as every latency report here gives them. */
export function percentilesOf(samples: readonly number[]): Percentiles {
  if (samples.length === 0) return { p50: null, p95: null, p99: null };
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99) };
}

/** Nearest-rank percentile of an ascending array, rounded to 0.01 ms. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round((sorted[rank] ?? NaN) * 100) / 100;
}
