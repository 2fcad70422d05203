import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from './helpers.js';

/** What `npm run cluster -- --state-file F` writes once everything is up. */
export interface ClusterState {
  /** nginx, in front of the replicas. */
  url: string;
  redisUrl: string;
  redisPid: number;
  nginxPid: number;
  replicas: Array<{ id: string; port: number; url: string; pid: number }>;
}

export interface RunningCluster {
  state: ClusterState;
  /** SIGTERM to the cluster script: replicas drain, nginx and Redis stop, no container is left. */
  stop(): Promise<void>;
}

/**
 * Starts `dist/scripts/cluster.js` (Redis, `replicas` replicas and nginx on free
 * loopback ports) and resolves once it has written its state file. Replicas
 * inherit `env` on top of this process's environment.
 */
export async function startCluster(replicas: number, env: Record<string, string> = {}): Promise<RunningCluster> {
  const port = await freePort();
  const redisPort = await freePort();
  const stateFile = path.join(os.tmpdir(), `sandpool-cluster-test-${process.pid}-${port}.json`);
  const child = spawn(process.execPath, ['dist/scripts/cluster.js', '--replicas', String(replicas), '--port', String(port), '--redis-port', String(redisPort), '--state-file', stateFile, '--name', `t${port}`], {
    env: { ...process.env, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor('the cluster to start', () => existsSync(stateFile) || child.exitCode !== null, 120_000, 200);
  if (!existsSync(stateFile)) throw new Error(`the cluster script exited (code ${child.exitCode}) before it was up`);
  return {
    state: JSON.parse(readFileSync(stateFile, 'utf8')) as ClusterState,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
