/**
 * npm run cluster -- --replicas N --port P [--redis-port R] [--name NAME] [--state-file F] [--access-log]
 *
 * Redis, N sandpool replicas on loopback ports P+1 .. P+N, and nginx in front
 * on P (config rendered from nginx/sandpool.conf.template). Runs until
 * SIGINT/SIGTERM, then stops everything it started and leaves no container
 * behind. Replicas inherit this process's environment (POOL_MIN_SIZE, ...).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createDockerRuntime } from '../src/runtime/docker-runtime.js';
import { APP_LABEL_VALUE, LABELS } from '../src/runtime/types.js';

const { values } = parseArgs({
  options: {
    replicas: { type: 'string', default: '2' },
    port: { type: 'string', default: '3000' },
    'redis-port': { type: 'string' },
    name: { type: 'string' },
    'state-file': { type: 'string' },
    'access-log': { type: 'boolean', default: false },
    'api-rate': { type: 'string', default: '30r/s' },
  },
});
const replicas = Number(values.replicas);
const port = Number(values.port);
const redisPort = Number(values['redis-port'] ?? port + 1000);
if (!Number.isInteger(replicas) || replicas < 1 || replicas > 32 || !Number.isInteger(port) || port < 1 || port + replicas > 65535) {
  process.stderr.write('cluster: --replicas takes 1-32 and --port a free port below 65535-N\n');
  process.exit(2);
}
const name = values.name ?? `c${port}`;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const say = (line: string): void => void process.stderr.write(`[cluster] ${line}\n`);

interface Started {
  redis?: ChildProcess;
  nginx?: ChildProcess;
  replicas: Array<{ id: string; port: number; child: ChildProcess }>;
  dir: string;
}
const started: Started = { replicas: [], dir: mkdtempSync(path.join(os.tmpdir(), `sandpool-${name}-`)) };

async function waitUntil(what: string, ok: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await ok().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms`);
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

async function startRedis(): Promise<string> {
  started.redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore', detached: true });
  const url = `redis://127.0.0.1:${redisPort}`;
  await waitUntil('redis', async () => {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => undefined);
    try {
      await r.connect();
      return (await r.ping()) === 'PONG';
    } finally {
      r.disconnect();
    }
  }, 10_000);
  return url;
}

async function startReplicas(redisUrl: string): Promise<void> {
  for (let i = 1; i <= replicas; i++) {
    const id = `${name}-${i}`;
    const child = spawn(process.execPath, [path.join(root, 'dist/src/main.js')], {
      cwd: root,
      env: { ...process.env, PORT: String(port + i), HOST: '127.0.0.1', REPLICA_ID: id, REDIS_URL: redisUrl },
      stdio: ['ignore', 'inherit', 'inherit'],
      detached: true,
    });
    child.once('exit', (code, signal) => {
      if (!stopping) say(`replica ${id} exited (${signal ?? `code ${code}`})`);
    });
    started.replicas.push({ id, port: port + i, child });
  }
  await Promise.all(
    started.replicas.map((r) => waitUntil(`replica ${r.id}`, async () => (await fetch(`http://127.0.0.1:${r.port}/ready`)).ok, 120_000)),
  );
}

function renderNginx(): string {
  const template = readFileSync(path.join(root, 'nginx/sandpool.conf.template'), 'utf8');
  const vars: Record<string, string> = {
    SANDPOOL_LISTEN: `127.0.0.1:${port}`,
    SANDPOOL_UPSTREAMS: started.replicas.map((r) => `server 127.0.0.1:${r.port} max_fails=1 fail_timeout=5s;`).join('\n    '),
    SANDPOOL_API_RATE: values['api-rate'],
    SANDPOOL_INTERNAL_ALLOW: '',
  };
  const server = template.replace(/\$\{(SANDPOOL_[A-Z_]+)\}/g, (m, key: string) => vars[key] ?? m);
  const tmp = path.join(started.dir, 'tmp');
  mkdirSync(tmp, { recursive: true, mode: 0o777 });
  writeFileSync(path.join(started.dir, 'sandpool.conf'), server);
  const main = [
    // One worker per core: besides CPU, each worker has its own file-descriptor
    // limit, and where the hard limit cannot be raised (20000 on the project's
    // machine) one worker stopped accepting at ~10000 users (2 fds each).
    'worker_processes auto;',
    'daemon off;',
    `pid ${started.dir}/nginx.pid;`,
    `error_log ${started.dir}/error.log warn;`,
    // Every user holds two connections here (client + upstream): 32768 per worker is ~16000 users each.
    'worker_rlimit_nofile 65536;',
    'events { worker_connections 32768; }',
    'http {',
    values['access-log'] ? `  access_log ${started.dir}/access.log;` : '  access_log off;',
    `  client_body_temp_path ${tmp}/body;`,
    `  proxy_temp_path ${tmp}/proxy;`,
    `  fastcgi_temp_path ${tmp}/fastcgi;`,
    `  uwsgi_temp_path ${tmp}/uwsgi;`,
    `  scgi_temp_path ${tmp}/scgi;`,
    '  default_type application/octet-stream;',
    `  include ${started.dir}/sandpool.conf;`,
    '}',
    '',
  ].join('\n');
  const conf = path.join(started.dir, 'nginx.conf');
  writeFileSync(conf, main);
  return conf;
}

async function startNginx(): Promise<void> {
  const conf = renderNginx();
  started.nginx = spawn('nginx', ['-c', conf, '-p', started.dir], { stdio: ['ignore', 'inherit', 'inherit'], detached: true });
  started.nginx.once('exit', (code) => {
    if (!stopping) say(`nginx exited (code ${code}); see ${started.dir}/error.log`);
  });
  await waitUntil('nginx', async () => (await fetch(`http://127.0.0.1:${port}/health`)).ok, 15_000);
}

let stopping = false;
async function stopAll(): Promise<void> {
  if (stopping) return;
  stopping = true;
  say('stopping');
  started.nginx?.kill('SIGQUIT');
  // Replicas drain their own pools; a hung one is killed after 30 s.
  await Promise.all(
    started.replicas.map(async ({ child }) => {
      child.kill('SIGTERM');
      const done = await Promise.race([exited(child).then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 30_000))]);
      if (!done) child.kill('SIGKILL');
      await exited(child);
    }),
  );
  if (started.nginx) await Promise.race([exited(started.nginx), new Promise((r) => setTimeout(r, 5_000))]);
  started.nginx?.kill('SIGKILL');
  started.redis?.kill('SIGTERM');
  if (started.redis) await exited(started.redis);
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
  for (const child of [started.nginx, ...started.replicas.map((r) => r.child), started.redis]) {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => void stopAll().then(() => process.exit(0), () => process.exit(1)));
}

try {
  const redisUrl = await startRedis();
  say(`redis on ${redisUrl}`);
  await startReplicas(redisUrl);
  say(`${replicas} replicas ready on ports ${port + 1}..${port + replicas}`);
  await startNginx();
  const url = `http://127.0.0.1:${port}`;
  const state = {
    url,
    redisUrl,
    redisPid: started.redis?.pid,
    nginxPid: started.nginx?.pid,
    replicas: started.replicas.map((r) => ({ id: r.id, port: r.port, url: `http://127.0.0.1:${r.port}`, pid: r.child.pid })),
  };
  if (values['state-file']) writeFileSync(values['state-file'], `${JSON.stringify(state, null, 2)}\n`);
  process.stdout.write(`sandpool cluster ready at ${url} (${replicas} replicas, Redis ${redisUrl}); Ctrl-C stops it\n`);
} catch (err) {
  say(`failed: ${err instanceof Error ? err.message : String(err)}`);
  await stopAll();
  process.exit(1);
}
