import os from 'node:os';
import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { APP_LABEL_VALUE, LABELS, type ContainerRuntime, type ContainerSummary } from '../runtime/types.js';

/** Options of createOrphanSweeper. */
export interface OrphanSweeperOptions {
  runtime: ContainerRuntime;
  replicaId: string;
  /** This process's `sandpool.owner` label value. */
  owner: string;
  /** Containers this replica owns right now (never swept). */
  ownedIds: () => ReadonlySet<string>;
  logger: Logger;
  /** A container of an unknown replica on another host is an orphan once older than this. Default 24 h. */
  graceMs?: number;
  /** Our own unlisted containers younger than this may still be starting. Default 60000. */
  inFlightGraceMs?: number;
  /** Default 60000. */
  intervalMs?: number;
  /** A dead replica whose owner cannot be checked from here (another host) loses its containers after this lapse. */
  deadReplicaGraceMs: number;
  /** With shared heartbeats: true when that replica is alive (its containers are never swept). */
  isReplicaLive: (replicaId: string) => Promise<boolean>;
  /** Hook for removed containers (metrics). */
  onRemoved: (count: number) => void;
}

export interface OrphanSweeper {
  /** One pass; resolves with the ids it removed. */
  sweep(): Promise<string[]>;
  /**
   * Removes the containers of a replica whose heartbeat expired, each only on
   * the strongest evidence that its owner is gone: on this host its process no
   * longer exists; as a container here, it is not running; otherwise its
   * heartbeat has lapsed longer than DEAD_REPLICA_GRACE_MS. `kept` counts the
   * containers left because their owner still exists (or may), `failed` those
   * whose removal failed; a failed listing rejects.
   */
  removeDeadReplica(replicaId: string, lastSeenAtMs: number): Promise<{ removed: string[]; kept: number; failed: number }>;
  /**
   * Removes every container this replica in this process labelled as its own, whatever its
   * age or state: the last step of shutdown, when nothing of ours may remain
   * (a start that finished after the pool drained included).
   */
  removeOwn(): Promise<string[]>;
  start(): void;
  stop(): void;
}

type Verdict = { orphan: false } | { orphan: true; why: string };

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes sandpool containers whose owning replica is gone, like
 * testcontainers' reaper but by label. Without shared heartbeats the owner's
 * liveness is decided locally:
 * - owner process on this host: alive iff its pid exists;
 * - owner on another host that is a container on this engine (compose
 *   replicas): alive iff that container runs;
 * - otherwise: our own REPLICA_ID from an earlier run is dead; an unknown
 *   replica is dead once its container is older than the grace period.
 */
export function createOrphanSweeper(options: OrphanSweeperOptions): OrphanSweeper {
  const { runtime, replicaId, owner } = options;
  const graceMs = options.graceMs ?? 86_400_000;
  const deadReplicaGraceMs = options.deadReplicaGraceMs;
  const inFlightGraceMs = options.inFlightGraceMs ?? 60_000;
  const log = options.logger.child({ component: 'OrphanSweeper' });
  const hostname = os.hostname();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<string[]> | undefined;

  /**
   * What this host can tell about a container's owner process, whatever the
   * heartbeats say: on this host its pid exists or not; as a container on
   * this engine (compose, swarm) it runs or not. Undefined when it cannot
   * tell (another host). A stalled owner (SIGSTOP, a long GC pause) still
   * exists: its sandboxes are never removed on a lapsed heartbeat alone.
   */
  async function ownerEvidence(c: ContainerSummary): Promise<Verdict | undefined> {
    const labelOwner = c.labels[LABELS.owner] ?? '';
    const [ownerHost = '', pidText = ''] = labelOwner.split('/');
    const pid = Number(pidText);
    if (ownerHost === hostname && Number.isInteger(pid) && pid > 0) {
      return pidAlive(pid) ? { orphan: false } : { orphan: true, why: `owner process ${pid} on this host is gone` };
    }
    if (ownerHost !== '' && ownerHost !== hostname) {
      const running = await runtime.isRunning(ownerHost).catch(() => undefined);
      if (running === true) return { orphan: false };
      if (running === false) return { orphan: true, why: `owner container ${ownerHost} is not running` };
    }
    return undefined;
  }

  async function judge(c: ContainerSummary, now: number): Promise<Verdict> {
    const age = now - c.createdAtMs;
    if ((c.labels[LABELS.owner] ?? '') === owner) {
      return age > inFlightGraceMs ? { orphan: true, why: 'ours but no longer tracked' } : { orphan: false };
    }
    const replica = c.labels[LABELS.replica] ?? '';
    if (replica !== replicaId && (await options.isReplicaLive(replica))) return { orphan: false };
    const evidence = await ownerEvidence(c);
    if (evidence) return evidence;
    if (c.labels[LABELS.replica] === replicaId) return { orphan: true, why: `left by an earlier run of replica ${replicaId}` };
    if (age > graceMs) return { orphan: true, why: `unknown owner and older than ${graceMs} ms` };
    return { orphan: false };
  }

  async function sweepOnce(): Promise<string[]> {
    const now = Date.now();
    return (await removeWhere({ [LABELS.app]: APP_LABEL_VALUE }, (c) => judge(c, now))).removed;
  }

  /**
   * Lists containers with these labels and removes those judged orphans (never
   * our own); `failed` counts orphans whose removal failed. A failed listing
   * is logged and removes nothing, unless `listErrors` is 'throw'.
   */
  async function removeWhere(
    labels: Record<string, string>,
    verdictOf: (c: ContainerSummary) => Promise<Verdict>,
    owned: ReadonlySet<string> = options.ownedIds(),
    listErrors: 'log' | 'throw' = 'log',
  ): Promise<{ removed: string[]; failed: number }> {
    const removed: string[] = [];
    let failed = 0;
    let containers: ContainerSummary[];
    try {
      containers = await runtime.list(labels);
    } catch (err) {
      if (listErrors === 'throw') throw err;
      log.warn({ err: errorMessage(err) }, 'orphan sweep could not list containers');
      return { removed, failed };
    }
    for (const c of containers) {
      if (owned.has(c.id)) continue;
      const verdict = await verdictOf(c);
      if (!verdict.orphan) continue;
      try {
        await runtime.remove(c.id);
        removed.push(c.id);
        log.info({ container: c.id.slice(0, 12), name: c.name, replica: c.labels[LABELS.replica], why: verdict.why }, 'removed orphan container');
      } catch (err) {
        failed++;
        log.warn({ container: c.id.slice(0, 12), err: errorMessage(err) }, 'could not remove orphan container');
      }
    }
    if (removed.length > 0) options.onRemoved(removed.length);
    return { removed, failed };
  }

  return {
    sweep() {
      // One pass at a time: a slow engine must not pile sweeps up.
      running ??= sweepOnce().finally(() => {
        running = undefined;
      });
      return running;
    },
    async removeDeadReplica(deadReplica, lastSeenAtMs) {
      const lapseMs = Date.now() - lastSeenAtMs;
      let kept = 0;
      // A listing that failed must not read as "nothing left": it throws, and the reaper tries again.
      const { removed, failed } = await removeWhere({ [LABELS.app]: APP_LABEL_VALUE, [LABELS.replica]: deadReplica }, async (c) => {
        const verdict = (await ownerEvidence(c)) ??
          (lapseMs > deadReplicaGraceMs
            ? { orphan: true as const, why: `replica ${deadReplica} sent no heartbeat for ${Math.round(lapseMs / 1000)} s (DEAD_REPLICA_GRACE_MS)` }
            : { orphan: false as const });
        if (!verdict.orphan) kept++;
        return verdict;
      }, undefined, 'throw');
      return { removed, kept, failed };
    },
    async removeOwn() {
      return (await removeWhere(
        // Replica too: several replicas in one process (tests, embedding) share the owner label.
        { [LABELS.app]: APP_LABEL_VALUE, [LABELS.owner]: owner, [LABELS.replica]: replicaId },
        async () => ({ orphan: true, why: 'this replica is shutting down' }),
        new Set(),
      )).removed;
    },
    start() {
      if (timer) return;
      timer = setInterval(() => void this.sweep(), options.intervalMs ?? 60_000);
      timer.unref();
    },
    stop() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
