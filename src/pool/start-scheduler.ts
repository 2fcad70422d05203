import type { Tool } from '../protocol/mcp-types.js';
import { SandpoolError } from '../errors.js';
import type { Logger } from '../logger.js';
import { startSandbox, type Sandbox } from '../mcp/sandbox.js';
import type { ContainerRuntime, SandboxSpec } from '../runtime/types.js';
import { LatencyWindow, sleep, withTimeout } from '../util/async.js';
import { Backoff, Capacity } from './capacity.js';
import type { PoolObserver } from './types.js';

/**
 * Told when a start fails or the pool shuts down while its acquire waits.
 * Returns true when it failed its acquire (false: it has a sandbox coming, or
 * it already failed).
 */
export type WaiterListener = (err: Error) => boolean;

/** Options of createStartScheduler. */
export interface StartSchedulerOptions {
  runtime: ContainerRuntime;
  makeSpec: () => SandboxSpec;
  /** Bound on one start: create + start + MCP initialize + tools/list. */
  createTimeoutMs: number;
  createConcurrency: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Consecutive failed starts from which a failure counts as persistent. */
  persistentFailureThreshold: number;
  /** The pool's log. */
  log: Logger;
  /** Given to each sandbox, which logs its stderr under its own id. */
  sandboxLogger: Logger;
  observer?: PoolObserver;
}

export interface StartStats {
  /** Starts running or queued for a start slot right now. */
  creating: number;
  created: number;
  failed: number;
  consecutiveFailures: number;
  lastError: string | null;
  createLatencyMs: { p50: number | null; p95: number | null; p99: number | null };
}

/**
 * When and how sandboxes start: a bounded number at once, each bounded in
 * time, paced by a backoff after failures; and who pays for a failure.
 */
export interface StartScheduler {
  /**
   * Starts one sandbox once the backoff allows and a start slot is free.
   * Rejects with the start's error (the waiters have been told), or with
   * SHUTTING_DOWN once stopped.
   */
  start(): Promise<Sandbox>;
  /** Adds an acquire to the waiters told about failures, oldest first; returns its removal. */
  enlist(listener: WaiterListener): () => void;
  /** SANDBOX_FAILED to refuse a new acquire with, while starts fail persistently and the backoff runs. */
  refusal(): SandpoolError | undefined;
  /** ms until the backoff allows the next start. */
  backoffRemainingMs(): number;
  /** tools/list of the image, known once one start succeeded. */
  tools(): readonly Tool[] | undefined;
  stats(): StartStats;
  /** Ends the backoff wait, refuses further starts and fails every waiter with SHUTTING_DOWN. */
  stop(): void;
}

export function createStartScheduler(options: StartSchedulerOptions): StartScheduler {
  const { runtime, log, observer } = options;
  // Starts queue here (FIFO) so the first ones finish early instead of all finishing late.
  const slots = new Capacity(options.createConcurrency);
  const backoff = new Backoff(options.backoffBaseMs, options.backoffMaxMs);
  const persistentAfter = Math.max(1, options.persistentFailureThreshold);
  const stopping = new AbortController();
  // A Set keeps insertion order: the oldest waiter comes first.
  const waiters = new Set<WaiterListener>();
  const createLatency = new LatencyWindow();
  let creating = 0;
  let created = 0;
  let failed = 0;
  let lastError: string | null = null;
  let toolCatalog: readonly Tool[] | undefined;

  const shuttingDown = (): SandpoolError => new SandpoolError('SHUTTING_DOWN', 'the sandbox pool is shutting down');

  /** Several starts in a row failed: a broken image or a dead engine, not a blip. */
  function failingPersistently(): boolean {
    return backoff.consecutiveFailures >= persistentAfter;
  }

  /**
   * A failed start fails the oldest waiter only, so one transient failure (a
   * start timeout under load) costs one request, not a whole burst; once
   * failures look persistent it fails every waiter. Either way nobody waits
   * for the acquire timeout against an engine that cannot start anything.
   */
  function failWaiters(error: Error): void {
    const all = failingPersistently();
    for (const listener of waiters) {
      if (listener(error) && !all) return;
    }
  }

  function recordFailure(error: Error): void {
    failed++;
    backoff.failure();
    // Operators (stats, /ready, the log) see why; clients see the error's own message.
    lastError = error instanceof SandpoolError && error.detail !== undefined ? error.detail : error.message;
    log.error({ err: lastError, retryInMs: backoff.remainingMs() }, 'sandbox start failed');
    observer?.createFailed?.(error);
    failWaiters(error);
  }

  async function startOne(): Promise<Sandbox> {
    await slots.acquire();
    const started = Date.now();
    let sandbox: Sandbox;
    try {
      sandbox = await withTimeout(
        startSandbox(runtime, options.makeSpec(), { logger: options.sandboxLogger, initTimeoutMs: options.createTimeoutMs }),
        options.createTimeoutMs,
        'sandbox start',
        // Its caller gave up; nobody else knows it exists.
        (late) => void late.destroy().catch(() => undefined),
      );
    } finally {
      slots.release();
    }
    const ms = Date.now() - started;
    createLatency.record(ms);
    created++;
    observer?.created?.(ms);
    backoff.success();
    lastError = null;
    toolCatalog ??= sandbox.tools;
    return sandbox;
  }

  return {
    async start() {
      // Inside the start, not before it: generic-pool re-dispatches a failed
      // create at once while clients wait, which would be a busy loop against
      // a broken engine.
      const wait = backoff.remainingMs();
      if (wait > 0) await sleep(wait, stopping.signal);
      if (stopping.signal.aborted) throw shuttingDown();
      creating++;
      try {
        return await startOne();
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        // After stop() a failure is the shutdown's doing, and its waiters are gone.
        if (!stopping.signal.aborted) recordFailure(error);
        throw error;
      } finally {
        creating--;
      }
    },

    enlist(listener) {
      waiters.add(listener);
      return () => void waiters.delete(listener);
    },

    refusal() {
      // Only while the backoff runs: the first acquire after it is the probe
      // that finds out whether starts work again (with the pool off nothing
      // else would ever retry).
      if (!failingPersistently() || backoff.remainingMs() === 0) return undefined;
      return new SandpoolError('SANDBOX_FAILED', `sandboxes are failing to start right now; try again in ${Math.ceil(backoff.remainingMs() / 1000)} s`, {
        detail: `${lastError ?? 'unknown error'}; next attempt in ${backoff.remainingMs()} ms`,
      });
    },

    backoffRemainingMs: () => backoff.remainingMs(),

    tools: () => toolCatalog,

    stats() {
      return {
        creating,
        created,
        failed,
        consecutiveFailures: backoff.consecutiveFailures,
        lastError,
        createLatencyMs: createLatency.percentiles(),
      };
    },

    stop() {
      if (stopping.signal.aborted) return;
      stopping.abort();
      slots.close();
      const error = new SandpoolError('SHUTTING_DOWN', 'this replica is shutting down');
      for (const listener of waiters) listener(error);
    },
  };
}
