import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ReplicaRegistry } from '../state/types.js';

/**
 * Removes the containers of replicas whose heartbeat expired, then forgets
 * them. It runs on its own timer, outside the heartbeat: a survivor busy
 * removing containers must not miss its own beats.
 */
export interface DeadReplicaReaper {
  start(): void;
  stop(): Promise<void>;
  /** One pass (tests). */
  reap(): Promise<void>;
}

export function createDeadReplicaReaper(options: {
  registry: ReplicaRegistry;
  self: string;
  intervalMs: number;
  /** Removes every container of that replica; resolves when done. */
  removeReplica(replicaId: string): Promise<unknown>;
  logger: Logger;
}): DeadReplicaReaper {
  const log = options.logger.child({ component: 'DeadReplicaReaper' });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  async function reapOnce(): Promise<void> {
    let dead: string[];
    try {
      dead = await options.registry.dead();
    } catch {
      return; // shared state unreachable: the heartbeat reports that
    }
    for (const replica of dead) {
      if (replica === options.self) continue;
      log.warn({ deadReplica: replica }, 'replica heartbeat expired: removing its containers');
      try {
        await options.removeReplica(replica);
        await options.registry.bury(replica);
      } catch (err) {
        log.warn({ deadReplica: replica, err: errorMessage(err) }, 'could not clean up a dead replica; trying again later');
      }
    }
  }

  const reap = (): Promise<void> => (running ??= reapOnce().finally(() => (running = undefined)));

  return {
    reap,
    start() {
      timer ??= setInterval(() => void reap(), options.intervalMs);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      timer = undefined;
      await running;
    },
  };
}
