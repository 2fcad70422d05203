import { sleep } from '../util/async.js';
import { ReplicaSilentError } from './replica-bus.js';

/** How long a silent owner is waited out, and how often its claim is read meanwhile. */
export interface SilentOwnerWait {
  /** Until a dead replica's heartbeat has lapsed for everyone (cluster/heartbeat.ts deadReplicaVisibleMs). */
  lapseMs: number;
  pollMs: number;
}

/**
 * Runs `call` on the replica holding the user's sandbox. When that replica
 * gives no answer (ReplicaSilentError), it is often dead with a heartbeat not
 * lapsed yet: rather than tell the user to try again at once, this reads the
 * user's owner until its claim no longer counts (bounded by `lapseMs`).
 * Resolves `{ owner: undefined }` when nobody live holds the sandbox any more
 * (the caller serves the user itself, their files from the snapshot), or with
 * the answer of the replica that took the sandbox over. Still the same live
 * owner at the deadline: its late answer if one may still come (a tool
 * call's reply, bounded by the call's own timeout), else the
 * ReplicaSilentError ("try again"). Chat messages and routed tool calls both
 * come through here.
 */
export async function callOwnerUnlessSilent<T>(
  owner: string,
  call: (target: string) => Promise<T>,
  liveOwnerElsewhere: () => Promise<string | undefined>,
  wait: SilentOwnerWait,
): Promise<{ owner: string; answer: T } | { owner: undefined }> {
  try {
    return { owner, answer: await call(owner) };
  } catch (err) {
    if (!(err instanceof ReplicaSilentError)) throw err;
    const late = (err as ReplicaSilentError<T>).lateAnswer?.then((answer) => ({ owner, answer }));
    // Should it settle once we stopped waiting for it, nobody is listening.
    late?.catch(() => undefined);
    const deadline = Date.now() + wait.lapseMs;
    for (;;) {
      const now = await liveOwnerElsewhere();
      if (now === undefined) return { owner: undefined };
      if (now !== owner) return { owner: now, answer: await call(now) };
      // Live all along: a stalled owner, or one that runs the call without saying so; its answer has its own timeout.
      if (Date.now() >= deadline) {
        if (late) return await late;
        throw err;
      }
      // The silent owner's answer, if it comes meanwhile, is the answer.
      const early = await Promise.race([sleep(wait.pollMs).then(() => undefined), late]);
      if (early) return early;
    }
  }
}
