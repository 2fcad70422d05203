import { SandpoolError } from '../errors.js';

/**
 * Counts sandboxes of every state (starting, idle, leased) against
 * POOL_MAX_SIZE. A create waits here for a free slot instead of failing, so
 * generic-pool never sees a rejecting create just because the replica is full.
 */
export class Capacity {
  private used = 0;
  private readonly waiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private closed = false;

  constructor(private readonly max: number) {}

  acquire(): Promise<void> {
    if (this.closed) return Promise.reject(new SandpoolError('SHUTTING_DOWN', 'the sandbox pool is shutting down'));
    if (this.used < this.max) {
      this.used++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Slots free right now (0 while anyone waits). */
  free(): number {
    return this.waiters.length > 0 ? 0 : Math.max(0, this.max - this.used);
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next.resolve();
    else this.used = Math.max(0, this.used - 1);
  }

  /** Fails every waiter; later acquires fail at once. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(new SandpoolError('SHUTTING_DOWN', 'the sandbox pool is shutting down'));
  }
}

/** Exponential backoff with jitter between failed sandbox starts. */
export class Backoff {
  private failures = 0;
  private lastFailureAt = 0;

  constructor(
    private readonly baseMs = 250,
    private readonly maxMs = 30_000,
  ) {}

  get consecutiveFailures(): number {
    return this.failures;
  }

  /** Delay before the next attempt, counted from the last failure. */
  remainingMs(now = Date.now()): number {
    if (this.failures === 0) return 0;
    const full = Math.min(this.maxMs, this.baseMs * 2 ** (this.failures - 1));
    return Math.max(0, this.lastFailureAt + full - now);
  }

  failure(): void {
    this.failures++;
    // Jitter spreads retries of several replicas sharing one engine.
    this.lastFailureAt = Date.now() + Math.floor(Math.random() * this.baseMs);
  }

  success(): void {
    this.failures = 0;
  }
}
