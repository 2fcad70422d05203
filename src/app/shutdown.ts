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
