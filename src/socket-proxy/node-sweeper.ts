/**
 * The node's own sweeper, run by the socket proxy (one per node in a swarm:
 * the proxy is a global service). A replica leases sandboxes from its own
 * node's engine, so whether a sandbox's owner still runs is known on that
 * node without any shared state: the owner is a replica container on the
 * same engine (the `sandpool.owner` label's host part is its hostname). When
 * that container exists and is not running, the sandbox is an orphan and is
 * removed at once.
 *
 * Why here and not only in the replicas: after a node returns from a
 * partition or a power loss, swarm shuts its old tasks down and may place no
 * replica on it at all (their replacements run on the survivors), so no
 * replica is left on that node to sweep. The proxy always runs there.
 *
 * A sandbox whose owner is not a container on this engine (a replica as a
 * host process, or a container gone from the engine's list) is left to the
 * replicas' sweeper and dead-replica reaper, which know the heartbeats.
 */
import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { LABELS } from '../runtime/types.js';
import type { EngineClient } from './engine-client.js';
import { ENGINE_API_VERSION, REPLICA_LABEL, SANDBOX_LABEL } from './policy.js';

export interface NodeSweeperOptions {
  engine: EngineClient;
  logger: Logger;
  /** How often to look (PROXY_SWEEP_INTERVAL_MS); 0: never. */
  intervalMs: number;
}

export interface NodeSweeper {
  /** One pass; resolves with the ids removed. A failed listing removes nothing and is logged. */
  sweep(): Promise<string[]>;
  start(): void;
  stop(): void;
}

interface Summary {
  Id: string;
  Labels?: Record<string, string>;
}

/** What the engine says of the owner: a running replica, a stopped one, or not a replica container here. */
type Owner = 'running' | 'stopped' | 'unknown';

export function createNodeSweeper(options: NodeSweeperOptions): NodeSweeper {
  const { engine } = options;
  const log = options.logger.child({ component: 'NodeSweeper' });
  const api = `/${ENGINE_API_VERSION}`;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<string[]> | undefined;

  async function ownerState(host: string): Promise<Owner> {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(host)) return 'unknown';
    const answer = await engine.call('GET', `${api}/containers/${encodeURIComponent(host)}/json`);
    if (answer.status === 404) return 'unknown';
    if (answer.status !== 200) throw new Error(`inspect ${host}: HTTP ${answer.status}`);
    const doc = JSON.parse(answer.body.toString('utf8')) as { Config?: { Labels?: Record<string, string> }; State?: { Running?: boolean } };
    // A container that happens to carry that name is not an owner unless it is a replica.
    if (doc.Config?.Labels?.[REPLICA_LABEL.key] !== REPLICA_LABEL.value) return 'unknown';
    return doc.State?.Running === true ? 'running' : 'stopped';
  }

  async function sweepOnce(): Promise<string[]> {
    const filters = encodeURIComponent(JSON.stringify({ label: [`${SANDBOX_LABEL.key}=${SANDBOX_LABEL.value}`] }));
    let sandboxes: Summary[];
    try {
      const answer = await engine.call('GET', `${api}/containers/json?all=1&filters=${filters}`);
      if (answer.status !== 200) throw new Error(`HTTP ${answer.status}`);
      sandboxes = JSON.parse(answer.body.toString('utf8')) as Summary[];
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'node sweep could not list sandboxes');
      return [];
    }
    const removed: string[] = [];
    const owners = new Map<string, Owner>();
    for (const sandbox of sandboxes) {
      const labels = sandbox.Labels ?? {};
      if (labels[REPLICA_LABEL.key] === REPLICA_LABEL.value) continue;
      const host = (labels[LABELS.owner] ?? '').split('/')[0] ?? '';
      if (!host) continue;
      try {
        let owner = owners.get(host);
        if (!owner) {
          owner = await ownerState(host);
          owners.set(host, owner);
        }
        if (owner !== 'stopped') continue;
        const answer = await engine.call('DELETE', `${api}/containers/${sandbox.Id}?force=true&v=true`);
        if (answer.status !== 204 && answer.status !== 404) throw new Error(`remove: HTTP ${answer.status}`);
        removed.push(sandbox.Id);
        log.info({ container: sandbox.Id.slice(0, 12), replica: labels[LABELS.replica], owner: host }, 'removed orphan container: its owner replica container on this node is not running');
      } catch (err) {
        log.warn({ container: sandbox.Id.slice(0, 12), err: errorMessage(err) }, 'node sweep could not judge or remove a sandbox');
      }
    }
    return removed;
  }

  return {
    sweep() {
      running ??= sweepOnce().finally(() => {
        running = undefined;
      });
      return running;
    },
    start() {
      if (timer || options.intervalMs <= 0) return;
      timer = setInterval(() => void this.sweep(), options.intervalMs);
      timer.unref();
      void this.sweep();
    },
    stop() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
