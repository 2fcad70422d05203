import { startClusterProcess, type ClusterProcess, type ClusterState } from '../../scripts/lib/cluster-process.js';

export type { ClusterState };

export type RunningCluster = ClusterProcess;

/**
 * `npm run cluster` for a test: Redis, `replicas` replicas and nginx on free
 * loopback ports; replicas inherit `env` on top of this process's environment.
 */
export function startCluster(replicas: number, env: Record<string, string> = {}, args: readonly string[] = []): Promise<RunningCluster> {
  return startClusterProcess({
    replicas,
    args,
    namePrefix: 't',
    env: { ...process.env, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn', ...env },
    readyTimeoutMs: 120_000,
  });
}
