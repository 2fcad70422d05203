import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { startClusterProcess, type ClusterProcess, type ClusterState } from '../../scripts/lib/cluster-process.js';

export type { ClusterState };

export interface RunningCluster extends ClusterProcess {
  /** The replicas' logs (LOG_LEVEL warn unless TEST_LOG_LEVEL says otherwise), for a failing test to quote. */
  logFile: string;
}

/**
 * `npm run cluster` for a test: Redis, `replicas` replicas and nginx on free
 * loopback ports; replicas inherit `env` on top of this process's environment.
 */
export async function startCluster(replicas: number, env: Record<string, string> = {}, args: readonly string[] = []): Promise<RunningCluster> {
  mkdirSync('test-output', { recursive: true });
  const logFile = path.resolve('test-output', `cluster-${process.pid}-${Date.now()}.log`);
  const cluster = await startClusterProcess({
    replicas,
    args,
    namePrefix: 't',
    env: { ...process.env, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn', ...env },
    readyTimeoutMs: 120_000,
    stdout: { file: logFile },
  });
  return { ...cluster, logFile };
}
