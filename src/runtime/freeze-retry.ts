import { errorMessage } from '../errors.js';
import { sleep } from '../util/async.js';

/**
 * `docker pause` on cgroup v1 asks runc to freeze the container's cgroup;
 * when the freezer cannot settle (a process forking or exiting at that
 * moment, or a loaded machine: seen once in a full `npm test`), runc thaws
 * the cgroup back and the engine answers 500 "unable to freeze". The
 * container is then running as before, so asking again is safe, and a second
 * try at a calmer moment usually freezes it. Any other error is final.
 */
export const UNABLE_TO_FREEZE = /unable to freeze/i;

/** Default waits before the second and third tries. */
export const FREEZE_RETRY_DELAYS_MS: readonly number[] = [100, 400];

export async function pauseRetryingFreeze(pause: () => Promise<void>, delaysMs: readonly number[] = FREEZE_RETRY_DELAYS_MS): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await pause();
    } catch (err) {
      const delay = delaysMs[attempt];
      if (delay === undefined || !UNABLE_TO_FREEZE.test(errorMessage(err))) throw err;
      await sleep(delay);
    }
  }
}
