/**
 * `npm run cluster` (dist/scripts/cluster.js) as a child process on free
 * loopback ports, for the load runner and the cluster test: ready once it
 * writes its state file, which says where everything listens.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../../src/util/free-port.js';
import { fileExists, startProcess, type ExitStatus, type Sink, type StartedProcess } from './start-process.js';

/** What cluster.js writes to --state-file once Redis, every replica and nginx answer. */
export interface ClusterState {
  url: string;
  redisUrl: string;
  redisPid: number;
  /** redis-server's arguments: the same ones start it again over the same data. */
  redisArgs: string[];
  nginxPid: number;
  replicas: Array<{ id: string; port: number; url: string; pid: number }>;
}

export interface ClusterProcessOptions {
  replicas: number;
  /** Replica ids are `<prefix><port>-<n>`. */
  namePrefix?: string;
  /** The cluster's environment, which its replicas inherit. */
  env: NodeJS.ProcessEnv;
  /** More cluster.js flags (e.g. --api-rate). */
  args?: readonly string[];
  stdout?: Sink;
  stderr?: Sink;
  /** See SpawnOptions.onParentExit: SIGTERM lets the cluster remove its containers after we are gone. */
  onParentExit?: NodeJS.Signals;
  readyTimeoutMs?: number;
}

export interface ClusterProcess {
  state: ClusterState;
  process: StartedProcess;
  /** SIGTERM: the cluster drains its replicas and removes their containers; SIGKILL only after timeoutMs. */
  stop(timeoutMs?: number): Promise<ExitStatus>;
}

// Its own stop takes up to ~40 s (30 s replica drain, then nginx and Redis); a SIGKILL before that would orphan its replicas.
const STOP_TIMEOUT_MS = 120_000;
const CLUSTER_SCRIPT = fileURLToPath(new URL('../cluster.js', import.meta.url));

export async function startClusterProcess(options: ClusterProcessOptions): Promise<ClusterProcess> {
  const [port = 0, redisPort = 0, ...replicaPorts] = await freePorts(2 + options.replicas);
  const stateFile = path.join(os.tmpdir(), `sandpool-cluster-${process.pid}-${port}.json`);
  const proc = await startProcess({
    name: `cluster on :${port}`,
    command: process.execPath,
    args: [CLUSTER_SCRIPT, '--replicas', String(options.replicas), '--port', String(port), '--replica-ports', replicaPorts.join(','), '--redis-port', String(redisPort), '--state-file', stateFile, '--name', `${options.namePrefix ?? 'c'}${port}`, ...(options.args ?? [])],
    env: options.env,
    stdout: options.stdout ?? 'ignore',
    stderr: options.stderr ?? 'inherit',
    onParentExit: options.onParentExit,
    ready: fileExists(stateFile),
    readyTimeoutMs: options.readyTimeoutMs ?? 180_000,
    pollMs: 250,
    stopTimeoutMs: STOP_TIMEOUT_MS,
  });
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as ClusterState;
  return { state, process: proc, stop: (timeoutMs = STOP_TIMEOUT_MS) => proc.stop('SIGTERM', timeoutMs) };
}
