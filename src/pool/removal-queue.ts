/** Options of createRemovalQueue. */
export interface RemovalQueueOptions {
  /** Removals running at once. */
  concurrency: number;
  /** Whether starts are running: removals wait for them (starts are what users wait for). */
  startsBusy: () => boolean;
  /** A removal waits for starts at most this long after it was queued, so used sandboxes never pile up. */
  maxDeferMs: number;
  /** How often a deferred removal looks again whether starts are done. Default 50. */
  recheckMs?: number;
}

/**
 * Removing used sandboxes off the hot path: at most `concurrency` removals at
 * once, and none while sandboxes start (up to `maxDeferMs`), so a removal's
 * engine and kernel work does not slow the starts users wait for.
 */
export interface RemovalQueue {
  /** Runs `work` (one removal) when its turn comes; settles as it does. */
  run(work: () => Promise<void>): Promise<void>;
  /** Removals queued or running. */
  pending(): number;
  /** From now on no deferral and `concurrency` raised to at least `min`: drain empties the queue against a deadline. */
  hurry(min: number): void;
}

interface Job {
  work: () => Promise<void>;
  queuedAt: number;
  done: () => void;
}

export function createRemovalQueue(options: RemovalQueueOptions): RemovalQueue {
  const recheckMs = options.recheckMs ?? 50;
  const queue: Job[] = [];
  let concurrency = Math.max(1, options.concurrency);
  let running = 0;
  let hurried = false;
  let recheck: NodeJS.Timeout | undefined;

  function pump(): void {
    while (running < concurrency && queue.length > 0) {
      const next = queue[0];
      if (!next) return;
      if (!hurried && options.startsBusy() && Date.now() - next.queuedAt < options.maxDeferMs) {
        if (!recheck) {
          // Not unref'd: a removal owed is work this process still has to do.
          recheck = setTimeout(() => {
            recheck = undefined;
            pump();
          }, recheckMs);
        }
        return;
      }
      queue.shift();
      running++;
      void next
        .work()
        .catch(() => undefined)
        .finally(() => {
          running--;
          next.done();
          pump();
        });
    }
  }

  return {
    run(work) {
      return new Promise<void>((done) => {
        queue.push({ work, queuedAt: Date.now(), done });
        pump();
      });
    },
    pending: () => queue.length + running,
    hurry(min) {
      hurried = true;
      concurrency = Math.max(concurrency, min);
      clearTimeout(recheck);
      recheck = undefined;
      pump();
    },
  };
}
