import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { withTimeout } from '../util/async.js';

/** One step of an ordered shutdown. */
export interface ShutdownStep {
  name: string;
  /** This step's own bound; it never gets more than what is left of the whole budget. */
  maxMs?: number;
  /** Runs the step; `budgetMs` is its bound, for steps that pass it on (a drain, a grace period). */
  run(budgetMs: number): Promise<unknown> | void;
  /** What to do when the step ran out of time (e.g. cut the remaining connections). */
  onTimeout?(): void;
}

/**
 * Runs the steps in order, each bounded by its own limit and by what is left
 * of `budgetMs`. A step that fails or times out is logged and the next one
 * runs: a stuck step must never keep the replica's containers alive.
 */
export async function runShutdown(steps: readonly ShutdownStep[], options: { budgetMs: number; logger: Logger }): Promise<void> {
  const deadline = Date.now() + options.budgetMs;
  for (const step of steps) {
    // Every step gets a moment even when the budget is spent: removing containers must be tried.
    const left = Math.max(100, deadline - Date.now());
    const budgetMs = Math.min(left, step.maxMs ?? left);
    try {
      await withTimeout(Promise.resolve(step.run(budgetMs)), budgetMs, step.name);
    } catch (err) {
      options.logger.warn({ step: step.name, err: errorMessage(err) }, 'shutdown step incomplete');
      step.onTimeout?.();
    }
  }
}

/** What a replica's shutdown stops, in the order it stops them. */
export interface ShutdownParts {
  /** The background sweeps (orphans, dead replicas): nothing new starts during the stop. */
  stopSweeps(): void;
  /** Refuses new requests, gives running ones `graceMs`, cancels the rest, ends every presence. */
  finishRequests(graceMs: number): Promise<void>;
  /** Closes the Socket.IO sockets at the transport level: clients reconnect to a survivor. */
  closeSockets(): Promise<void>;
  /** Ends the MCP sessions (2025-11-25) and the 2026-07-28 exchanges and listen streams in flight. */
  closeMcpSessions(): Promise<void>;
  /** Stops accepting HTTP: resolves once busy connections finished; idle keep-alive ones close at once. */
  closeHttp(): Promise<void>;
  /** Cuts the HTTP connections still open (their grace ran out). */
  cutHttp(): void;
  drainPool(timeoutMs: number): Promise<void>;
  /** Removes whatever still carries this replica's owner label, however young. */
  removeOwnContainers(): Promise<unknown>;
  leaveCluster(): Promise<void>;
  closeSharedState(): Promise<void>;
  closeWorkspaceStore(): Promise<void>;
  /** QUIT on every Redis connection, each bounded by `timeoutMs`. */
  quitRedis(timeoutMs: number): Promise<unknown>;
}

/** The shutdown's bounds (SHUTDOWN_* settings). */
export interface ShutdownSettings {
  /** SHUTDOWN_TIMEOUT_MS: the whole stop. */
  budgetMs: number;
  /** SHUTDOWN_REQUEST_GRACE_MS: requests in flight get this, at most a third of the budget. */
  requestGraceMs: number;
  /** SHUTDOWN_HTTP_GRACE_MS: busy HTTP connections get this before they are cut. */
  httpGraceMs: number;
  /** SHUTDOWN_STEP_TIMEOUT_MS: each closing step. */
  stepTimeoutMs: number;
}

/** Room for what a step does after its own bound: cancelling past a grace, cutting connections past a QUIT. */
const SLACK_MS = 1_000;

/**
 * The ordered stop of a replica with each step's bound from the settings:
 * readiness has gone 503 already (the caller marks the replica draining), then
 * background work stops, requests finish or fail, clients are sent elsewhere,
 * the pool drains, leftovers go, and the replica leaves the cluster last.
 */
export function shutdownPlan(parts: ShutdownParts, settings: ShutdownSettings): ShutdownStep[] {
  const requestGraceMs = Math.min(settings.requestGraceMs, settings.budgetMs / 3);
  const step = settings.stepTimeoutMs;
  return [
    { name: 'stop background sweeps', run: () => parts.stopSweeps() },
    // Requests in flight get a share of the budget to finish; the rest fail with SHUTTING_DOWN.
    { name: 'finish requests in flight', maxMs: requestGraceMs + SLACK_MS, run: () => parts.finishRequests(requestGraceMs) },
    // Sockets are closed at the transport level: clients reconnect (through nginx) to a survivor.
    { name: 'close sockets', maxMs: step + SLACK_MS, run: () => parts.closeSockets() },
    { name: 'close MCP sessions', maxMs: step, run: () => parts.closeMcpSessions() },
    // Idle keep-alive sockets go now, busy ones get a bounded grace.
    { name: 'stop accepting HTTP', maxMs: settings.httpGraceMs, run: () => parts.closeHttp(), onTimeout: () => parts.cutHttp() },
    { name: 'drain the pool', run: (ms) => parts.drainPool(ms) },
    // Belt and braces: whatever still carries our owner label goes, however young.
    { name: 'remove our containers', run: () => parts.removeOwnContainers() },
    { name: 'leave the cluster', maxMs: step, run: () => parts.leaveCluster() },
    { name: 'close shared state', maxMs: step, run: () => parts.closeSharedState() },
    { name: 'close the workspace store', maxMs: step, run: () => parts.closeWorkspaceStore() },
    { name: 'quit Redis', maxMs: step + SLACK_MS, run: () => parts.quitRedis(step) },
  ];
}
