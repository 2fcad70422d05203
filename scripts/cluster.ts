/**
 * npm run cluster -- --replicas N --port P [--replica-ports P1,..,PN] [--redis-port R] [--redis-persistence aof|none] [--name NAME] [--state-file F] [--access-log]
 *
 * Redis, N sandpool replicas on loopback ports P+1 .. P+N (or --replica-ports:
 * a program that found free ports passes them, as P+1 may be taken), and nginx in front
 * on P (config rendered from nginx/sandpool.conf.template). Runs until
 * SIGINT/SIGTERM, then stops everything it started and leaves no container
 * behind. Replicas inherit this process's environment (POOL_MIN_SIZE, ...).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createDockerRuntime } from '../src/runtime/docker-runtime.js';
import { APP_LABEL_VALUE, LABELS } from '../src/runtime/types.js';
import { writeNginxConf } from './lib/nginx-conf.js';
import { redisServerArgs, startRedisServer } from './lib/redis-server.js';
import { describeExit, httpOk, spawnProcess, type StartedProcess } from './lib/start-process.js';

const { values } = parseArgs({
  options: {
    replicas: { type: 'string', default: '2' },
    port: { type: 'string', default: '3000' },
    'replica-ports': { type: 'string' },
    'redis-port': { type: 'string' },
    // aof (default): Redis keeps an append-only file (fsync every second), so a restart keeps sessions, histories and ownership.
    'redis-persistence': { type: 'string', default: 'aof' },
    name: { type: 'string' },
    'state-file': { type: 'string' },
    'access-log': { type: 'boolean', default: false },
    'api-rate': { type: 'string', default: '30r/s' },
    // Socket.IO connections per client address at nginx (limit_conn).
    'conn-per-ip': { type: 'string', default: '200' },
  },
});
const replicas = Number(values.replicas);
const port = Number(values.port);
const redisPort = Number(values['redis-port'] ?? port + 1000);
if (!Number.isInteger(replicas) || replicas < 1 || replicas > 32 || !Number.isInteger(port) || port < 1 || port + replicas > 65535) {
  process.stderr.write('cluster: --replicas takes 1-32 and --port a free port below 65535-N\n');
  process.exit(2);
}
const replicaPorts = values['replica-ports']?.split(',').map(Number) ?? Array.from({ length: replicas }, (_, i) => port + 1 + i);
if (replicaPorts.length !== replicas || !replicaPorts.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535)) {
  process.stderr.write(`cluster: --replica-ports takes ${replicas} ports, comma-separated\n`);
  process.exit(2);
}
if (!['aof', 'none'].includes(values['redis-persistence'])) {
  process.stderr.write('cluster: --redis-persistence takes aof or none\n');
  process.exit(2);
}
const name = values.name ?? `c${port}`;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const say = (line: string): void => void process.stderr.write(`[cluster] ${line}\n`);

interface Started {
  redis?: StartedProcess;
  nginx?: StartedProcess;
  replicas: Array<{ id: string; port: number; proc: StartedProcess }>;
  dir: string;
}
const started: Started = { replicas: [], dir: mkdtempSync(path.join(os.tmpdir(), `sandpool-${name}-`)) };

const redisPersistence = values['redis-persistence'] === 'none' ? undefined : { dir: path.join(started.dir, 'redis') };

async function startRedis(): Promise<string> {
  if (redisPersistence) mkdirSync(redisPersistence.dir, { recursive: true });
  const redis = await startRedisServer(redisPort, { detached: true, persistence: redisPersistence });
  started.redis = redis.process;
  return redis.url;
}

async function startReplicas(redisUrl: string): Promise<void> {
  for (const [index, replicaPort] of replicaPorts.entries()) {
    const id = `${name}-${index + 1}`;
    // Their logs go straight to the terminal: under load they are too many to pass through this process.
    const proc = spawnProcess({
      name: `replica ${id}`,
      command: process.execPath,
      args: [path.join(root, 'dist/src/main.js')],
      cwd: root,
      // The development identity unless this environment sets AUTH_SECRET: the
      // secret `npm run images` writes to .env is the compose stack's, not this cluster's.
      env: { ...process.env, AUTH_SECRET: process.env.AUTH_SECRET ?? '', PORT: String(replicaPort), HOST: '127.0.0.1', REPLICA_ID: id, REDIS_URL: redisUrl },
      stdout: 'inherit',
      stderr: 'inherit',
      detached: true,
    });
    void proc.exited.then((status) => {
      if (!stopping) say(`replica ${id} ${describeExit(status)}`);
    });
    started.replicas.push({ id, port: replicaPort, proc });
  }
  await Promise.all(started.replicas.map((r) => r.proc.waitReady(httpOk(`http://127.0.0.1:${r.port}/ready`), 120_000, 200)));
}

function renderNginx(): string {
  return writeNginxConf({
    dir: started.dir,
    listen: `127.0.0.1:${port}`,
    upstreams: started.replicas.map((r) => `127.0.0.1:${r.port}`),
    apiRate: values['api-rate'],
    connPerIp: values['conn-per-ip'],
    accessLog: values['access-log'],
  });
}

async function startNginx(): Promise<void> {
  const conf = renderNginx();
  const nginx = spawnProcess({ command: 'nginx', args: ['-c', conf, '-p', started.dir], stdout: 'inherit', stderr: 'inherit', detached: true });
  started.nginx = nginx;
  void nginx.exited.then((status) => {
    if (!stopping) say(`nginx ${describeExit(status)}; see ${started.dir}/error.log`);
  });
  await nginx.waitReady(httpOk(`http://127.0.0.1:${port}/health`), 15_000, 200);
}

let stopping = false;
async function stopAll(): Promise<void> {
  if (stopping) return;
  stopping = true;
  say('stopping');
  // nginx finishes its open requests (SIGQUIT) while the replicas drain; a
  // hung replica is killed after 30 s, a hung nginx 5 s after the replicas.
  started.nginx?.signal('SIGQUIT');
  await Promise.all(started.replicas.map(({ proc }) => proc.stop('SIGTERM', 30_000)));
  await started.nginx?.stop('SIGQUIT', 5_000);
  await started.redis?.stop('SIGTERM', 10_000);
  // Nothing of ours may outlive the cluster, even from a replica that was killed.
  const runtime = createDockerRuntime();
  const ids = new Set(started.replicas.map((r) => r.id));
  const left = await runtime.list({ [LABELS.app]: APP_LABEL_VALUE }).catch(() => []);
  await Promise.allSettled(left.filter((c) => ids.has(c.labels[LABELS.replica] ?? '')).map((c) => runtime.remove(c.id)));
  rmSync(started.dir, { recursive: true, force: true });
  if (values['state-file']) rmSync(values['state-file'], { force: true });
  say('stopped');
}

// Children run in their own process groups (detached): a terminal's Ctrl-C
// reaches only this script, which then stops them in order (replicas drain
// while Redis and nginx are still up). Should this script die some other
// way, it takes them along.
process.on('exit', () => {
  for (const proc of [started.nginx, ...started.replicas.map((r) => r.proc), started.redis]) proc?.signal('SIGKILL');
});

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => void stopAll().then(() => process.exit(0), () => process.exit(1)));
}

try {
  const redisUrl = await startRedis();
  say(`redis on ${redisUrl}`);
  await startReplicas(redisUrl);
  say(`${replicas} replicas ready on ports ${replicaPorts.join(', ')}`);
  await startNginx();
  const url = `http://127.0.0.1:${port}`;
  const state = {
    url,
    redisUrl,
    redisPid: started.redis?.pid,
    // How to start it again over the same data (the tests restart Redis).
    redisArgs: redisServerArgs(redisPort, redisPersistence),
    nginxPid: started.nginx?.pid,
    replicas: started.replicas.map((r) => ({ id: r.id, port: r.port, url: `http://127.0.0.1:${r.port}`, pid: r.proc.pid })),
  };
  if (values['state-file']) writeFileSync(values['state-file'], `${JSON.stringify(state, null, 2)}\n`);
  process.stdout.write(`sandpool cluster ready at ${url} (${replicas} replicas, Redis ${redisUrl}); Ctrl-C stops it\n`);
} catch (err) {
  say(`failed: ${err instanceof Error ? err.message : String(err)}`);
  await stopAll();
  process.exit(1);
}
